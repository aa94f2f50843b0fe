//! Gmail-like sources end to end: a real Dovecot laid out like Gmail
//! (label folders, a virtual "[Gmail]/All Mail" over them with `\All`,
//! Sent, Spam and Trash with SPECIAL-USE flags, in English or German)
//! migrated to a Dovecot IMAP target and to the Graph emulator, in both
//! `gmail_labels` modes.
//!
//! The mailbox: 1,000 messages, 5 labels (one nested and non-ASCII, one
//! with a space), each message with 0 to 3 labels, some also in INBOX or
//! Sent, some only in All Mail (archived), some in Spam or Trash. What each
//! target must hold is worked out here from that layout, independently of
//! cutover's own rules.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use common::{ADMIN_PASSWORD, explain, user};
use support::dovecot::{Dovecot, DovecotOptions, GmailLayout, StoredMessage};
use support::mailgen::{self, GenMessage};

const LABELS: [&str; 5] = ["Work", "family", "Receipts", "Travel/Übersee", "Projects 2024"];
const MESSAGES: usize = 1000;

/// Where one message shows up in the source.
#[derive(Clone, Debug, Default)]
struct Place {
    inbox: bool,
    sent: bool,
    labels: Vec<&'static str>,
    spam: bool,
    trash: bool,
}

impl Place {
    fn archived(&self) -> bool {
        !self.inbox && !self.sent && self.labels.is_empty() && !self.spam && !self.trash
    }

    fn left_out(&self) -> bool {
        self.spam || self.trash
    }
}

/// A deterministic spread over every case the rules distinguish.
fn place(i: usize) -> Place {
    match i % 25 {
        0 => {
            return Place {
                spam: true,
                ..Place::default()
            };
        }
        1 => {
            return Place {
                trash: true,
                ..Place::default()
            };
        }
        _ => {}
    }
    let inbox = matches!(i % 5, 2 | 3);
    let sent = !inbox && i.is_multiple_of(7);
    let count = (i / 3) % 4;
    // Steps of 2 over 5 labels never repeat within 3 picks.
    let labels = (0..count).map(|k| LABELS[(i + 2 * k) % LABELS.len()]).collect();
    Place {
        inbox,
        sent,
        labels,
        ..Place::default()
    }
}

struct Mailbox {
    messages: Vec<GenMessage>,
    places: Vec<Place>,
}

fn mailbox() -> Mailbox {
    let messages = mailgen::generate(7, MESSAGES, 1200);
    let places = (0..MESSAGES).map(place).collect();
    Mailbox { messages, places }
}

/// Starts a Gmail-like source holding the mailbox for `user`.
fn gmail_source(layout: &GmailLayout, email: &str, password: &str, mb: &Mailbox) -> Dovecot {
    let source = Dovecot::start(DovecotOptions {
        users: vec![(email.to_owned(), password.to_owned())],
        gmail: Some(layout.clone()),
        ..Default::default()
    });
    let g = |name: &str| format!("[Gmail]/{name}");
    let mut by_folder: BTreeMap<String, Vec<GenMessage>> = BTreeMap::new();
    for (m, p) in mb.messages.iter().zip(&mb.places) {
        let mut put = |folder: String| by_folder.entry(folder).or_default().push(m.clone());
        if p.spam {
            put(g(&layout.spam));
        }
        if p.trash {
            put(g(&layout.trash));
        }
        if p.inbox {
            put("INBOX".into());
        }
        if p.sent {
            put(g(&layout.sent));
        }
        for l in &p.labels {
            put((*l).to_owned());
        }
        if p.archived() {
            put(g(&layout.all));
        }
    }
    for (folder, msgs) in &by_folder {
        source.deliver(email, folder, msgs);
    }
    source
}

fn counts(mb: &Mailbox) -> (usize, usize, usize) {
    let kept = mb.places.iter().filter(|p| !p.left_out()).count();
    let archived = mb.places.iter().filter(|p| p.archived()).count();
    let per_label = mb
        .places
        .iter()
        .filter(|p| !p.left_out())
        .map(|p| usize::from(p.inbox) + usize::from(p.sent) + p.labels.len() + usize::from(p.archived()))
        .sum();
    (kept, archived, per_label)
}

/// The folder a message lands in with `gmail_labels = "categories"`, in the
/// IMAP target's names: INBOX, Sent, the label first by name ignoring case,
/// or Archive.
fn main_folder(p: &Place) -> String {
    if p.inbox {
        return "INBOX".into();
    }
    if p.sent {
        return "Sent".into();
    }
    let mut labels = p.labels.clone();
    labels.sort_by_key(|l| l.to_lowercase());
    labels.first().map_or("Archive".into(), |l| (*l).to_owned())
}

fn keyword(label: &str) -> String {
    match label {
        "Travel/Übersee" => "Travel/&ANw-bersee".into(),
        "Projects 2024" => "Projects_2024".into(),
        l => l.into(),
    }
}

fn write_imap_config(dir: &Path, source: &Dovecot, target: &Dovecot, mode: &str) -> std::path::PathBuf {
    let config = format!(
        "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\ngmail_labels = \"{mode}\"\n\n\
         [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
         login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n\n\
         [state]\npath = \"state.db\"\n",
        source.port(),
        target.port()
    );
    let p = dir.join("cutover.toml");
    std::fs::write(&p, config).unwrap();
    p
}

fn write_users(dir: &Path, email: &str, password: &str) -> std::path::PathBuf {
    let p = dir.join("users.csv");
    std::fs::write(
        &p,
        format!("EmailAddress,UserName,Password\r\n{email},{email},{password}\r\n"),
    )
    .unwrap();
    p
}

fn run(args: &[&str], config: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .envs(env.iter().copied())
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .env("CUTOVER_TEST_GRAPH_SECRET", GRAPH_SECRET)
        .current_dir(config.parent().unwrap())
        .output()
        .expect("run cutover")
}

fn migrate(config: &Path, users: &Path, env: &[(&str, &str)]) {
    let out = run(&["migrate", "--users", users.to_str().unwrap()], config, env);
    assert!(out.status.success(), "migrate failed: {}", explain(&out));
}

fn status(config: &Path) -> Value {
    let out = run(&["status", "--json"], config, &[]);
    assert!(out.status.success(), "status failed: {}", explain(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["users"][0].clone()
}

/// Target messages by Message-ID.
fn by_message_id(target: &[StoredMessage]) -> BTreeMap<String, Vec<&StoredMessage>> {
    let mut map: BTreeMap<String, Vec<&StoredMessage>> = BTreeMap::new();
    for m in target {
        map.entry(mailgen::message_id(&m.raw).expect("generated mail has a Message-ID"))
            .or_default()
            .push(m);
    }
    map
}

fn imap_target(email: &str, password: &str) -> Dovecot {
    Dovecot::start(DovecotOptions {
        users: vec![(email.to_owned(), password.to_owned())],
        master: Some(("admin".into(), ADMIN_PASSWORD.into())),
        ..Default::default()
    })
}

#[test]
fn categories_mode_to_imap_copies_each_message_once_with_its_labels_as_keywords() {
    let (email, password) = user(1);
    let mb = mailbox();
    let (kept, archived, _) = counts(&mb);
    let source = gmail_source(&GmailLayout::english(), &email, &password, &mb);
    let target = imap_target(&email, &password);
    let dir = tempfile::tempdir().unwrap();
    let config = write_imap_config(dir.path(), &source, &target, "categories");
    let users = write_users(dir.path(), &email, &password);
    migrate(&config, &users, &[]);

    let got = target.messages(&email);
    assert_eq!(got.len(), kept, "every message once, none from Spam or Trash");
    let got = by_message_id(&got);
    for (m, p) in mb.messages.iter().zip(&mb.places) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        if p.left_out() {
            assert!(copies.is_empty(), "{id} is in Spam or Trash and must not be copied");
            continue;
        }
        assert_eq!(copies.len(), 1, "{id} ({p:?}) exactly once");
        let t = copies[0];
        assert_eq!(t.folder, main_folder(p), "{id} ({p:?}) in its main folder");
        assert!(t.raw == m.raw, "{id}: bytes identical");
        assert_eq!(t.internal_date, m.internal_date, "{id}: INTERNALDATE");
        let mut want = m.flags.clone();
        want.extend(p.labels.iter().map(|l| keyword(l)));
        mailgen::sort_flags(&mut want);
        assert_eq!(t.flags, want, "{id}: source flags plus every label as a keyword");
    }
    let in_archive = got.values().flatten().filter(|m| m.folder == "Archive").count();
    assert_eq!(in_archive, archived, "archived mail (only in All Mail) goes to Archive");

    let s = status(&config);
    assert_eq!(s["copied"], kept as u64, "{s}");
    assert_eq!(s["failed"], 0, "{s}");

    // A rerun finds nothing new to copy and duplicates nothing.
    migrate(&config, &users, &[]);
    assert_eq!(target.messages(&email).len(), kept, "a rerun copies nothing twice");

    // verify applies the same rules: label copies, Spam and Trash are out
    // of scope, so nothing is missing.
    let out = run(&["verify", "--json", "--users", users.to_str().unwrap()], &config, &[]);
    assert!(out.status.success(), "verify: {}", explain(&out));
}

#[test]
fn folders_mode_to_imap_localized_copies_once_per_label_and_never_from_all_mail() {
    let (email, password) = user(1);
    let mb = mailbox();
    let (_, archived, per_label) = counts(&mb);
    let source = gmail_source(&GmailLayout::german(), &email, &password, &mb);
    let target = imap_target(&email, &password);
    let dir = tempfile::tempdir().unwrap();
    let config = write_imap_config(dir.path(), &source, &target, "folders");
    let users = write_users(dir.path(), &email, &password);
    migrate(&config, &users, &[]);

    let got = target.messages(&email);
    assert_eq!(got.len(), per_label, "one copy per label folder, none from All Mail");
    let got = by_message_id(&got);
    for (m, p) in mb.messages.iter().zip(&mb.places) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let folders: BTreeSet<String> = got
            .get(&id)
            .map(|v| v.iter().map(|t| t.folder.clone()).collect())
            .unwrap_or_default();
        let mut want = BTreeSet::new();
        if !p.left_out() {
            if p.inbox {
                want.insert("INBOX".to_owned());
            }
            if p.sent {
                // "[Gmail]/Gesendet" is the Sent folder by its role.
                want.insert("Sent".to_owned());
            }
            want.extend(p.labels.iter().map(|l| (*l).to_owned()));
            if p.archived() {
                // "[Gmail]/Alle Nachrichten" contributes archived mail only.
                want.insert("Archive".to_owned());
            }
        }
        assert_eq!(folders, want, "{id} ({p:?})");
        for t in got.get(&id).into_iter().flatten() {
            assert_eq!(t.flags, m.flags, "{id}: flags as in the source, no label keywords");
        }
    }
    let in_archive = got.values().flatten().filter(|m| m.folder == "Archive").count();
    assert_eq!(in_archive, archived);
    let names: BTreeSet<String> = target.folders(&email).into_iter().map(|f| f.name).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("Gmail") || n.contains("Spam") || n.contains("Papierkorb")),
        "no [Gmail] folder, Spam or Trash copied as a folder: {names:?}"
    );
}

/// A smaller mailbox of the same spread, for the resync tests.
fn small_mailbox() -> Mailbox {
    let n = 200;
    Mailbox {
        messages: mailgen::generate(11, n, 1200),
        places: (0..n).map(place).collect(),
    }
}

/// A migrate with `--json`: its `user_finished` event.
fn migrate_counts(config: &Path, users: &Path) -> Value {
    let out = run(&["migrate", "--json", "--users", users.to_str().unwrap()], config, &[]);
    assert!(out.status.success(), "migrate failed: {}", explain(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .find(|e| e["event"] == "user_finished")
        .expect("a user_finished event")
}

/// What a sync did: (copied, moved, flags or labels written).
fn did(finished: &Value) -> (u64, u64, u64) {
    let n = |k: &str| finished[k].as_u64().unwrap_or_else(|| panic!("{k} in {finished}"));
    (n("copied"), n("moved"), n("flags_updated"))
}

/// The UID of the message with Message-ID `id` in `folder` of the source.
fn source_uid(source: &Dovecot, email: &str, folder: &str, id: &str) -> u32 {
    let mailbox = source.mailbox_name(folder);
    let out = source.doveadm(&["search", "-u", email, "mailbox", &mailbox, "header", "Message-ID", id]);
    let uids: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(uids.len(), 1, "{id} once in {folder}: {out:?}");
    uids[0]
}

/// The label changes the resync tests make on the source, as Gmail shows
/// them: a label added is the message in one more folder, a label removed
/// (or the message taken out of the Inbox) is the message gone from that
/// folder, still in All Mail.
struct Relabel<'a> {
    source: &'a Dovecot,
    email: &'a str,
    mb: &'a Mailbox,
    /// The places after the changes.
    places: Vec<Place>,
    /// The messages picked so far: each change is made to another one.
    picked: Vec<usize>,
}

impl Relabel<'_> {
    fn id(&self, i: usize) -> String {
        mailgen::message_id(&self.mb.messages[i].raw).unwrap()
    }

    fn add(&mut self, i: usize, label: &'static str) {
        assert!(!self.places[i].labels.contains(&label));
        self.source.deliver(self.email, label, &[self.mb.messages[i].clone()]);
        self.places[i].labels.push(label);
    }

    fn remove(&mut self, i: usize, label: &'static str) {
        let uid = source_uid(self.source, self.email, label, &self.id(i));
        self.source.expunge(self.email, &self.source.mailbox_name(label), uid);
        self.places[i].labels.retain(|l| *l != label);
    }

    fn remove_from_inbox(&mut self, i: usize) {
        assert!(self.places[i].inbox);
        let uid = source_uid(self.source, self.email, "INBOX", &self.id(i));
        self.source.expunge(self.email, "INBOX", uid);
        self.places[i].inbox = false;
    }

    /// The message's last label removed: it stays in All Mail only.
    fn archive(&mut self, i: usize, layout: &GmailLayout) {
        let [label] = self.places[i].labels[..] else {
            panic!("{i} has one label");
        };
        assert!(!self.places[i].inbox && !self.places[i].sent);
        // The stand-in keeps a stored copy per folder: the archived one
        // first, so the message never leaves All Mail.
        self.source.deliver(
            self.email,
            &format!("[Gmail]/{}", layout.all),
            &[self.mb.messages[i].clone()],
        );
        self.remove(i, label);
        assert!(self.places[i].archived());
    }

    /// The first message not picked before that `want` accepts.
    fn pick(&mut self, want: impl Fn(&Place) -> bool) -> usize {
        let i = (0..self.places.len())
            .find(|&i| !self.picked.contains(&i) && !self.places[i].left_out() && want(&self.places[i]))
            .expect("the spread has such a message");
        self.picked.push(i);
        i
    }
}

/// Checks an IMAP target in categories mode: every message once, in its
/// main folder by `places` (or Archive for those in `in_archive`: a copy
/// already in the target stays where it is), the source's flags plus every
/// label as a keyword.
fn assert_categories(target: &[StoredMessage], mb: &Mailbox, places: &[Place], in_archive: &[usize]) {
    let got = by_message_id(target);
    let kept = places.iter().filter(|p| !p.left_out()).count();
    assert_eq!(target.len(), kept, "every message once");
    for (i, (m, p)) in mb.messages.iter().zip(places).enumerate() {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        if p.left_out() {
            assert!(copies.is_empty(), "{id} is in Spam or Trash");
            continue;
        }
        assert_eq!(copies.len(), 1, "{id} ({p:?}) exactly once: {copies:?}");
        let want_folder = if in_archive.contains(&i) {
            "Archive".to_owned()
        } else {
            main_folder(p)
        };
        assert_eq!(copies[0].folder, want_folder, "{id} ({p:?})");
        let mut want = m.flags.clone();
        want.extend(p.labels.iter().map(|l| keyword(l)));
        mailgen::sort_flags(&mut want);
        assert_eq!(copies[0].flags, want, "{id} ({p:?}): source flags plus its labels now");
    }
}

/// Checks an IMAP target in folders mode: every message in the folder of
/// each of its labels by `places` (Inbox, Sent, Archive when archived),
/// once each, with the source's flags.
fn assert_folders(target: &[StoredMessage], mb: &Mailbox, places: &[Place]) {
    let got = by_message_id(target);
    for (m, p) in mb.messages.iter().zip(places) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let folders: Vec<String> = copies.iter().map(|t| t.folder.clone()).collect();
        let mut want = Vec::new();
        if !p.left_out() {
            if p.inbox {
                want.push("INBOX".to_owned());
            }
            if p.sent {
                want.push("Sent".to_owned());
            }
            want.extend(p.labels.iter().map(|l| (*l).to_owned()));
            if p.archived() {
                want.push("Archive".to_owned());
            }
        }
        let mut sorted = folders.clone();
        sorted.sort();
        want.sort();
        assert_eq!(sorted, want, "{id} ({p:?}): once per label, no duplicates");
        for t in copies {
            assert_eq!(t.flags, m.flags, "{id}: flags as in the source");
        }
    }
}

/// The target's messages by (folder, UID, flags): what a no-op resync must
/// leave exactly as it was.
fn snapshot(target: &[StoredMessage]) -> Vec<(String, u32, Vec<String>)> {
    target
        .iter()
        .map(|m| (m.folder.clone(), m.uid, m.flags.clone()))
        .collect()
}

#[test]
fn categories_mode_resync_carries_labels_added_and_removed_to_the_one_copy() {
    let (email, password) = user(1);
    let mb = small_mailbox();
    let layout = GmailLayout::english();
    let source = gmail_source(&layout, &email, &password, &mb);
    let target = imap_target(&email, &password);
    let dir = tempfile::tempdir().unwrap();
    let config = write_imap_config(dir.path(), &source, &target, "categories");
    let users = write_users(dir.path(), &email, &password);
    migrate(&config, &users, &[]);
    assert_categories(&target.messages(&email), &mb, &mb.places, &[]);

    let mut r = Relabel {
        source: &source,
        email: &email,
        mb: &mb,
        places: mb.places.clone(),
        picked: Vec::new(),
    };
    // A label added to a message in the Inbox.
    let added = r.pick(|p| p.inbox && !p.labels.contains(&"Receipts"));
    r.add(added, "Receipts");
    // Two labels, not in the Inbox: the one that is not its main folder
    // removed, then (another message) the one that is.
    let two = |p: &Place| !p.inbox && !p.sent && p.labels.len() >= 2;
    let other_removed = r.pick(two);
    let main = main_folder(&r.places[other_removed]);
    let other = *r.places[other_removed].labels.iter().find(|l| **l != main).unwrap();
    r.remove(other_removed, other);
    let main_removed = r.pick(two);
    let main = main_folder(&r.places[main_removed]);
    let main = *r.places[main_removed].labels.iter().find(|l| **l == main).unwrap();
    r.remove(main_removed, main);
    // Archived mail labelled: its copy stays in Archive, with the label.
    let labelled = r.pick(Place::archived);
    r.add(labelled, "Projects 2024");
    // Taken out of the Inbox (Gmail's Archive button): the copy goes to
    // its label's folder.
    let unboxed = r.pick(|p| p.inbox && !p.labels.is_empty() && !p.labels.contains(&"Receipts"));
    r.remove_from_inbox(unboxed);

    let before = target.messages(&email).len();
    let (copied, moved, written) = did(&migrate_counts(&config, &users));
    assert_eq!(copied, 0, "nothing copied again");
    assert_eq!(
        moved, 2,
        "the copy whose main folder's label was removed, and the one out of the Inbox"
    );
    assert_eq!(written, 4, "labels added or removed: four copies' categories changed");
    let got = target.messages(&email);
    assert_eq!(got.len(), before, "no copy added or lost");
    assert_categories(&got, &mb, &r.places, &[labelled]);

    // A rerun changes nothing.
    assert_eq!(did(&migrate_counts(&config, &users)), (0, 0, 0));
    assert_eq!(snapshot(&target.messages(&email)), snapshot(&got));

    // verify agrees: nothing missing, nothing duplicated.
    let out = run(&["verify", "--json", "--users", users.to_str().unwrap()], &config, &[]);
    assert!(out.status.success(), "verify: {}", explain(&out));
}

#[test]
fn folders_mode_resync_adds_and_removes_label_copies_without_duplicates() {
    let (email, password) = user(1);
    let mb = small_mailbox();
    let layout = GmailLayout::english();
    let source = gmail_source(&layout, &email, &password, &mb);
    let target = imap_target(&email, &password);
    let dir = tempfile::tempdir().unwrap();
    let config = write_imap_config(dir.path(), &source, &target, "folders");
    let users = write_users(dir.path(), &email, &password);
    migrate(&config, &users, &[]);
    assert_folders(&target.messages(&email), &mb, &mb.places);

    let mut r = Relabel {
        source: &source,
        email: &email,
        mb: &mb,
        places: mb.places.clone(),
        picked: Vec::new(),
    };
    // A label added: one more copy, in that label's folder.
    let added = r.pick(|p| !p.labels.is_empty() && !p.labels.contains(&"Receipts"));
    r.add(added, "Receipts");
    // A label removed: its copy goes, the others stay.
    let removed = r.pick(|p| p.labels.len() >= 2);
    let label = r.places[removed].labels[0];
    r.remove(removed, label);
    // Archived mail labelled: its Archive copy gives way to the label's.
    let labelled = r.pick(Place::archived);
    r.add(labelled, "Projects 2024");
    // The only label removed: archived, the copy moves to Archive.
    let archived = r.pick(|p| !p.inbox && !p.sent && p.labels.len() == 1);
    r.archive(archived, &layout);
    // Taken out of the Inbox: the INBOX copy goes.
    let unboxed = r.pick(|p| p.inbox && !p.labels.is_empty());
    r.remove_from_inbox(unboxed);

    let (copied, moved, written) = did(&migrate_counts(&config, &users));
    assert_eq!(copied, 2, "the label added, and the label of archived mail");
    assert_eq!(moved, 1, "the copy of the message archived, to Archive");
    assert_eq!(written, 0, "no flag changed");
    let got = target.messages(&email);
    assert_folders(&got, &mb, &r.places);
    let per_label: usize = r
        .places
        .iter()
        .filter(|p| !p.left_out())
        .map(|p| usize::from(p.inbox) + usize::from(p.sent) + p.labels.len() + usize::from(p.archived()))
        .sum();
    assert_eq!(got.len(), per_label, "one copy per label, nothing else");

    // A rerun changes nothing.
    assert_eq!(did(&migrate_counts(&config, &users)), (0, 0, 0));
    assert_eq!(snapshot(&target.messages(&email)), snapshot(&got));
}

/// A Graph emulator on a free loopback port.
struct Emu {
    _server: RunningEmulator,
    base: String,
}

use support::emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
const GRAPH_SECRET: &str = "s3cret-value";

impl Emu {
    fn start() -> Emu {
        Emu::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Emu {
        let server = Emulator::new()
            .client_secret(GRAPH_SECRET)
            .seed(7)
            .args(["--page-size", "1000"])
            // Throttling is tested elsewhere (graph_target.rs): here a
            // higher request budget, the same on both sides, keeps the
            // test fast without ever being over it.
            .args(["--rate-limit-requests", "200000"])
            .args(extra)
            .start();
        Emu {
            base: server.base_url.clone(),
            _server: server,
        }
    }

    /// Sends one request (with `token` as the app's bearer token, else
    /// none) and reads its answer: status and JSON body (`Null` if none).
    fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut rb = reqwest::Client::new().request(method, format!("{}{path}", self.base));
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let resp = rb.send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }

    /// An app token, as the test's own client gets one.
    fn token(&self) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let scope: String = format!("{}/.default", self.base)
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        rt.block_on(async {
            let resp = reqwest::Client::new()
                .post(format!("{}/{TENANT}/oauth2/v2.0/token", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=client_credentials&client_id={CLIENT}&client_secret={GRAPH_SECRET}&scope={scope}"
                ))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "token: {}", resp.status());
            let v: Value = resp.json().await.unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        })
    }

    /// The mailbox's Outlook master category list: (name, colour) in order.
    fn master_categories(&self, email: &str) -> Vec<(String, String)> {
        self.dump(email)["masterCategories"]
            .as_array()
            .expect("the dump lists the master categories")
            .iter()
            .map(|c| {
                (
                    c["displayName"].as_str().unwrap().to_owned(),
                    c["color"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Categories created through Graph so far.
    fn categories_created(&self) -> u64 {
        let (status, v) = self.call(reqwest::Method::GET, "/_emulator/stats", None, None);
        assert_eq!(status, 200);
        v["total"]["by_kind"]["masterCategories.create"].as_u64().unwrap_or(0)
    }

    fn dump(&self, email: &str) -> Value {
        let url = format!("{}/_emulator/mailboxes/{email}?mime=false", self.base);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let resp = reqwest::get(url).await.unwrap();
            assert!(resp.status().is_success(), "emulator dump: {}", resp.status());
            resp.json().await.unwrap()
        })
    }
}

fn graph_migrate(source: &Dovecot, emu: &Emu, email: &str, password: &str, mode: &str) -> (tempfile::TempDir, Value) {
    let (dir, config_path, users) = graph_config(source, emu, email, password, mode);
    migrate(&config_path, &users, &[]);
    let s = status(&config_path);
    (dir, s)
}

/// A config and users file migrating `email` from `source` into `emu`.
fn graph_config(
    source: &Dovecot,
    emu: &Emu,
    email: &str,
    password: &str,
    mode: &str,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\ngmail_labels = \"{mode}\"\n\n\
         [target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_env = \"CUTOVER_TEST_GRAPH_SECRET\"\nendpoint = \"{base}\"\nauthority = \"{base}\"\n\
         requests_per_10_minutes = 200000\n\n\
         [state]\npath = \"state.db\"\n",
        source.port(),
        base = emu.base
    );
    let config_path = dir.path().join("cutover.toml");
    std::fs::write(&config_path, config).unwrap();
    let users = write_users(dir.path(), email, password);
    (dir, config_path, users)
}

/// Graph's folder for an IMAP-target folder name of the expected layout.
fn graph_folder(imap_name: &str) -> Vec<String> {
    match imap_name {
        "INBOX" => vec!["Inbox".into()],
        "Sent" => vec!["Sent Items".into()],
        "Archive" => vec!["Archive".into()],
        other => other.split('/').map(str::to_owned).collect(),
    }
}

fn graph_messages(dump: &Value) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in dump["messages"].as_array().unwrap() {
        map.entry(m["internetMessageId"].as_str().unwrap().to_owned())
            .or_default()
            .push(m);
    }
    map
}

/// The categories a message has without labels: its own user keywords.
fn own_categories(m: &GenMessage) -> BTreeSet<String> {
    m.flags
        .iter()
        .filter(|f| !f.starts_with('$') && !f.starts_with('\\'))
        .cloned()
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn categories_mode_to_graph_localized_copies_each_message_once_with_categories() {
    let (email, password) = ("alice@contoso.test".to_owned(), "pw-alice-s3cret".to_owned());
    let mb = mailbox();
    let (kept, _, _) = counts(&mb);
    let source = gmail_source(&GmailLayout::german(), &email, &password, &mb);
    let emu = Emu::start();
    let (_dir, s) = graph_migrate(&source, &emu, &email, &password, "categories");
    assert_eq!(s["copied"], kept as u64, "{s}");
    let dump = emu.dump(&email);
    let got = graph_messages(&dump);
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), kept, "every message once");
    for (m, p) in mb.messages.iter().zip(&mb.places) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        if p.left_out() {
            assert!(copies.is_empty(), "{id} is in Spam or Trash and must not be copied");
            continue;
        }
        assert_eq!(copies.len(), 1, "{id} ({p:?}) exactly once");
        let g = copies[0];
        assert_eq!(strings(&g["folderPath"]), graph_folder(&main_folder(p)), "{id} ({p:?})");
        if !m.flags.iter().any(|f| f == "\\Draft") {
            assert_eq!(g["isDraft"], false, "{id}: delivered mail, not a draft");
        }
        let cats: BTreeSet<String> = strings(&g["categories"]).into_iter().collect();
        let mut want = own_categories(m);
        want.extend(p.labels.iter().map(|l| (*l).to_owned()));
        assert_eq!(cats, want, "{id}: every label as a category");
    }
}

#[test]
fn categories_mode_resync_to_graph_rewrites_categories_in_place() {
    let (email, password) = ("carol@contoso.test".to_owned(), "pw-carol-s3cret".to_owned());
    let mb = small_mailbox();
    let source = gmail_source(&GmailLayout::english(), &email, &password, &mb);
    let emu = Emu::start();
    let (dir, _) = graph_migrate(&source, &emu, &email, &password, "categories");
    let (config, users) = (dir.path().join("cutover.toml"), dir.path().join("users.csv"));
    let mut r = Relabel {
        source: &source,
        email: &email,
        mb: &mb,
        places: mb.places.clone(),
        picked: Vec::new(),
    };
    // In the Inbox, which stays their main folder: a label added to one,
    // one removed from another.
    let added = r.pick(|p| p.inbox && !p.labels.contains(&"Receipts"));
    r.add(added, "Receipts");
    let removed = r.pick(|p| p.inbox && !p.labels.is_empty());
    let label = r.places[removed].labels[0];
    r.remove(removed, label);

    assert_eq!(
        did(&migrate_counts(&config, &users)),
        (0, 0, 2),
        "two copies' categories written"
    );
    let check = || {
        let dump = emu.dump(&email);
        let got = graph_messages(&dump);
        let mut ids = BTreeMap::new();
        for (m, p) in mb.messages.iter().zip(&r.places).filter(|(_, p)| !p.left_out()) {
            let id = mailgen::message_id(&m.raw).unwrap();
            let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(copies.len(), 1, "{id} ({p:?}) exactly once");
            let g = copies[0];
            assert_eq!(strings(&g["folderPath"]), graph_folder(&main_folder(p)), "{id} ({p:?})");
            let cats: BTreeSet<String> = strings(&g["categories"]).into_iter().collect();
            let mut want = own_categories(m);
            want.extend(p.labels.iter().map(|l| (*l).to_owned()));
            assert_eq!(cats, want, "{id} ({p:?}): its labels now as categories");
            ids.insert(id, g["id"].clone());
        }
        assert_eq!(got.values().map(Vec::len).sum::<usize>(), ids.len(), "nothing else");
        ids
    };
    let ids = check();
    // A rerun writes nothing, and the copies are the same items.
    assert_eq!(did(&migrate_counts(&config, &users)), (0, 0, 0));
    assert_eq!(check(), ids);
}

/// The labels the copied messages carry.
fn labels_used(places: &[Place]) -> BTreeSet<&'static str> {
    places
        .iter()
        .filter(|p| !p.left_out())
        .flat_map(|p| p.labels.iter().copied())
        .collect()
}

/// The entries of a master category list named `label`, compared as
/// Exchange compares names (ignoring case).
fn named<'a>(list: &'a [(String, String)], label: &str) -> Vec<&'a (String, String)> {
    list.iter()
        .filter(|(n, _)| n.to_lowercase() == label.to_lowercase())
        .collect()
}

fn is_preset(colour: &str) -> bool {
    colour
        .strip_prefix("preset")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n < 25)
}

#[test]
fn categories_mode_to_graph_puts_every_label_in_outlooks_category_list() {
    let (email, password) = ("dave@contoso.test".to_owned(), "pw-dave-s3cret".to_owned());
    let mb = small_mailbox();
    let (kept, _, _) = counts(&mb);
    let used = labels_used(&mb.places);
    assert_eq!(used.len(), LABELS.len(), "the mailbox uses every label");
    let source = gmail_source(&GmailLayout::english(), &email, &password, &mb);
    let emu = Emu::start();
    // Before the migration the user has categories of their own: one named
    // as a label, one as a label in other case.
    let token = emu.token();
    let list_path = format!("/v1.0/users/{email}/outlook/masterCategories");
    for (name, colour) in [("Receipts", "preset20"), ("FAMILY", "preset13")] {
        let (status, v) = emu.call(
            reqwest::Method::POST,
            &list_path,
            Some(&token),
            Some(serde_json::json!({"displayName": name, "color": colour})),
        );
        assert_eq!(status, 201, "{v}");
    }
    let before = emu.master_categories(&email);

    let (dir, s) = graph_migrate(&source, &emu, &email, &password, "categories");
    assert_eq!(s["copied"], kept as u64, "{s}");
    let list = emu.master_categories(&email);
    // Every label once, with a colour of its own; nothing else added, and
    // what was there is as it was (names and colours).
    for label in &used {
        let entries = named(&list, label);
        assert_eq!(entries.len(), 1, "{label} once in {list:?}");
        assert!(is_preset(&entries[0].1), "{label}: {:?}", entries[0]);
    }
    assert_eq!(list.len(), before.len() + used.len() - 2, "{list:?}");
    assert_eq!(&list[..before.len()], &before[..], "the user's categories unchanged");
    assert_eq!(
        named(&list, "Receipts")[0],
        &("Receipts".to_owned(), "preset20".to_owned())
    );
    assert_eq!(named(&list, "family")[0], &("FAMILY".to_owned(), "preset13".to_owned()));
    assert!(
        named(&list, "Travel/Übersee")[0].0 == "Travel/Übersee",
        "a nested label is one category, named as on the messages: {list:?}"
    );
    // What the messages carry from their labels is in the list, by the
    // very same name (or one Exchange takes for it).
    let dump = emu.dump(&email);
    for (m, p) in mb.messages.iter().zip(&mb.places).filter(|(_, p)| !p.left_out()) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copy = &graph_messages(&dump)[&id][0];
        let cats = strings(&copy["categories"]);
        for label in &p.labels {
            assert!(cats.iter().any(|c| c == label), "{id}: {label} on the message");
            assert_eq!(named(&list, label).len(), 1, "{id}: {label} listed");
        }
    }

    // A second run creates nothing and changes nothing.
    let created = emu.categories_created();
    let (config, users) = (dir.path().join("cutover.toml"), dir.path().join("users.csv"));
    assert_eq!(did(&migrate_counts(&config, &users)), (0, 0, 0));
    assert_eq!(emu.categories_created(), created, "nothing created again");
    assert_eq!(emu.master_categories(&email), list);
}

#[test]
fn categories_without_mailbox_settings_permission_copy_mail_and_say_what_to_grant() {
    let (email, password) = ("erin@contoso.test".to_owned(), "pw-erin-s3cret".to_owned());
    let mb = small_mailbox();
    let (kept, _, _) = counts(&mb);
    let used = labels_used(&mb.places);
    let source = gmail_source(&GmailLayout::english(), &email, &password, &mb);
    let emu = Emu::start_with(&["--mailbox-settings", "none"]);
    let (_dir, config, users) = graph_config(&source, &emu, &email, &password, "categories");
    let u = users.to_str().unwrap();

    // `check` says which permission is missing, and that mail goes on.
    let out = run(&["check", "--json", "--users", u], &config, &[]);
    assert!(out.status.success(), "check: {}", explain(&out));
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = checked["users"][0]["warnings"].to_string();
    assert!(
        warnings.contains("MailboxSettings.ReadWrite") && warnings.contains("admin consent"),
        "{checked}"
    );
    assert_eq!(checked["users"][0]["ready"], true, "{checked}");
    let before = emu.master_categories(&email);

    // The migrate copies every message, with its labels as categories, and
    // tells the admin once what to grant.
    let out = run(&["migrate", "--users", u], &config, &[]);
    assert!(out.status.success(), "migrate: {}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches("the app lacks the Microsoft Graph application permission MailboxSettings.ReadWrite")
            .count(),
        1,
        "one notice naming the permission: {stderr}"
    );
    assert!(
        stderr.contains("admin consent") && stderr.contains("next run"),
        "{stderr}"
    );
    assert_eq!(status(&config)["copied"], kept as u64);
    let dump = emu.dump(&email);
    let got = graph_messages(&dump);
    for (m, p) in mb.messages.iter().zip(&mb.places).filter(|(_, p)| !p.left_out()) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let cats = strings(&got[&id][0]["categories"]);
        for label in &p.labels {
            assert!(cats.iter().any(|c| c == label), "{id}: {label} on the message");
        }
    }
    assert_eq!(emu.master_categories(&email), before, "the list could not be changed");

    // Granted: the next run, with no mail left to copy, adds the labels.
    let (status_code, v) = emu.call(
        reqwest::Method::POST,
        "/_emulator/permissions",
        None,
        Some(serde_json::json!({"mailboxSettings": "read-write"})),
    );
    assert_eq!(status_code, 200, "{v}");
    assert_eq!(did(&migrate_counts(&config, &users)), (0, 0, 0));
    let list = emu.master_categories(&email);
    for label in &used {
        assert_eq!(named(&list, label).len(), 1, "{label} in {list:?}");
    }
    assert_eq!(list.len(), before.len() + used.len());
}

#[test]
fn folders_mode_to_graph_copies_once_per_label_without_categories() {
    let (email, password) = ("bob@contoso.test".to_owned(), "pw-bob-s3cret".to_owned());
    let mb = mailbox();
    let (_, _, per_label) = counts(&mb);
    let source = gmail_source(&GmailLayout::english(), &email, &password, &mb);
    let emu = Emu::start();
    let (_dir, s) = graph_migrate(&source, &emu, &email, &password, "folders");
    assert_eq!(s["copied"], per_label as u64, "{s}");
    let dump = emu.dump(&email);
    let got = graph_messages(&dump);
    for (m, p) in mb.messages.iter().zip(&mb.places) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let mut folders: Vec<Vec<String>> = got
            .get(&id)
            .map(|v| v.iter().map(|g| strings(&g["folderPath"])).collect())
            .unwrap_or_default();
        folders.sort();
        let mut want: Vec<Vec<String>> = Vec::new();
        if !p.left_out() {
            if p.inbox {
                want.push(graph_folder("INBOX"));
            }
            if p.sent {
                want.push(graph_folder("Sent"));
            }
            want.extend(p.labels.iter().map(|l| graph_folder(l)));
            if p.archived() {
                want.push(graph_folder("Archive"));
            }
        }
        want.sort();
        assert_eq!(folders, want, "{id} ({p:?})");
        for g in got.get(&id).into_iter().flatten() {
            let cats: BTreeSet<String> = strings(&g["categories"]).into_iter().collect();
            assert_eq!(cats, own_categories(m), "{id}: no label categories in folders mode");
        }
    }
}

/// The same mailbox as a Google Takeout export: one mbox, each message once
/// with its `From_` line (X-GM-MSGID and received time), `X-GM-THRID` and
/// `X-Gmail-Labels` headers and mboxrd quoting, plus a message whose body
/// has lines only quoting keeps apart from separators.
fn takeout(mb: &Mailbox, extra: &GenMessage) -> Vec<u8> {
    let mut out = Vec::new();
    let all = mb
        .messages
        .iter()
        .zip(mb.places.iter().cloned())
        .chain(std::iter::once((
            extra,
            Place {
                labels: vec!["Work"],
                ..Place::default()
            },
        )));
    for (i, (m, p)) in all.enumerate() {
        let date = chrono::DateTime::from_timestamp(m.internal_date, 0).unwrap();
        let gm_msgid = 1_600_000_000_000_000_000u64 + i as u64;
        out.extend_from_slice(
            format!("From {gm_msgid}@xxx {}\r\n", date.format("%a %b %d %H:%M:%S +0000 %Y")).as_bytes(),
        );
        let mut labels: Vec<String> = Vec::new();
        if p.archived() {
            labels.push("Archived".into());
        }
        if p.inbox {
            labels.push("Inbox".into());
        }
        if p.sent {
            labels.push("Sent".into());
        }
        if p.spam {
            labels.push("Spam".into());
        }
        if p.trash {
            labels.push("Trash".into());
        }
        if m.flags.iter().any(|f| f == "\\Flagged") {
            labels.push("Starred".into());
        }
        labels.push(
            if m.flags.iter().any(|f| f == "\\Seen") {
                "Opened"
            } else {
                "Unread"
            }
            .into(),
        );
        if i % 3 == 0 {
            labels.push("Category Updates".into());
        }
        labels.extend(p.labels.iter().map(|l| format!("\"{l}\"")));
        out.extend_from_slice(format!("X-GM-THRID: {gm_msgid}\r\nX-Gmail-Labels: {}\r\n", labels.join(",")).as_bytes());
        for line in m.raw.split_inclusive(|&b| b == b'\n') {
            let unquoted = line.iter().position(|&b| b != b'>').map_or(&[][..], |p| &line[p..]);
            if unquoted.starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn from_lines_message() -> GenMessage {
    GenMessage {
        raw: b"Message-ID: <from-lines@gen.cutover.test>\r\nSubject: quoting\r\n\r\nFrom the start of a line\r\n>From an earlier quote\r\n\r\nFrom again after an empty line\r\n"
            .to_vec(),
        flags: vec!["\\Seen".into()],
        internal_date: 1_600_000_000,
    }
}

fn write_mbox_config(dir: &Path, target: &Dovecot, mode: &str) -> std::path::PathBuf {
    let config = format!(
        "[source]\nkind = \"mbox\"\npath = \"takeout/{{email}}.mbox\"\ngmail_labels = \"{mode}\"\n\n\
         [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
         login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n\n\
         [state]\npath = \"state.db\"\n",
        target.port()
    );
    let p = dir.join("cutover.toml");
    std::fs::write(&p, config).unwrap();
    p
}

/// Gmail flags a Takeout export keeps: read state and Starred.
fn takeout_flags(m: &GenMessage) -> Vec<String> {
    m.flags
        .iter()
        .filter(|f| *f == "\\Seen" || *f == "\\Flagged")
        .cloned()
        .collect()
}

#[test]
fn a_takeout_mbox_of_the_same_mail_gives_the_same_result() {
    let (email, password) = user(1);
    let mb = mailbox();
    let (kept, archived, per_label) = counts(&mb);
    let extra = from_lines_message();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("takeout")).unwrap();
    std::fs::write(dir.path().join(format!("takeout/{email}.mbox")), takeout(&mb, &extra)).unwrap();

    // Categories mode: each message once, in its main folder, with labels.
    let target = imap_target(&email, &password);
    let config = write_mbox_config(dir.path(), &target, "categories");
    let users = write_users(dir.path(), &email, &password);
    migrate(&config, &users, &[]);
    let got = target.messages(&email);
    assert_eq!(got.len(), kept + 1, "every message once, none from Spam or Trash");
    let got = by_message_id(&got);
    let all = mb
        .messages
        .iter()
        .zip(mb.places.iter().cloned())
        .chain(std::iter::once((
            &extra,
            Place {
                labels: vec!["Work"],
                ..Place::default()
            },
        )));
    for (m, p) in all {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        if p.left_out() {
            assert!(copies.is_empty(), "{id} is in Spam or Trash and must not be copied");
            continue;
        }
        assert_eq!(copies.len(), 1, "{id} ({p:?}) exactly once");
        let t = copies[0];
        assert_eq!(t.folder, main_folder(&p), "{id} ({p:?}) in its main folder");
        assert!(
            t.raw == m.raw,
            "{id}: bytes as received (Takeout headers and quoting removed)"
        );
        assert_eq!(
            t.internal_date, m.internal_date,
            "{id}: received time from the From_ line"
        );
        let mut want = takeout_flags(m);
        want.extend(p.labels.iter().map(|l| keyword(l)));
        mailgen::sort_flags(&mut want);
        assert_eq!(t.flags, want, "{id}: read state, star and every label as a keyword");
    }
    let in_archive = got.values().flatten().filter(|m| m.folder == "Archive").count();
    assert_eq!(in_archive, archived, "archived mail goes to Archive");
    // A rerun reads the file again and copies nothing twice.
    migrate(&config, &users, &[]);
    assert_eq!(target.messages(&email).len(), kept + 1);

    // Folders mode: one copy per label, none from All Mail.
    let target = imap_target(&email, &password);
    std::fs::remove_file(dir.path().join("state.db")).unwrap();
    let config = write_mbox_config(dir.path(), &target, "folders");
    migrate(&config, &users, &[]);
    assert_eq!(
        target.messages(&email).len(),
        per_label + 1,
        "one copy per label folder"
    );
}

#[test]
fn check_and_verify_read_a_takeout_export_as_migrate_does() {
    let (email, password) = user(1);
    let mb = mailbox();
    let (kept, _, _) = counts(&mb);
    let extra = from_lines_message();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("takeout")).unwrap();
    std::fs::write(dir.path().join(format!("takeout/{email}.mbox")), takeout(&mb, &extra)).unwrap();
    let target = imap_target(&email, &password);
    let config = write_mbox_config(dir.path(), &target, "categories");
    let users = write_users(dir.path(), &email, &password);
    let u = users.to_str().unwrap();

    // check sizes the export from its index, counting each message once.
    let out = run(&["check", "--json", "--users", u], &config, &[]);
    assert!(out.status.success(), "check: {}", explain(&out));
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["totals"]["messages"], (kept + 1) as u64, "{checked}");
    assert_eq!(checked["users"][0]["source"]["size_method"], "mbox index", "{checked}");

    migrate(&config, &users, &[]);
    // verify applies migrate's scope to a fresh read of the export.
    let out = run(&["verify", "--json", "--users", u], &config, &[]);
    assert!(out.status.success(), "verify: {}", explain(&out));
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verified["totals"]["missing"], 0, "{verified}");
    assert_eq!(verified["totals"]["complete"], 1, "{verified}");

    // A message lost from the target is missing, and verify says so.
    target.expunge(&email, "INBOX", 1);
    let out = run(&["verify", "--json", "--users", u], &config, &[]);
    assert_eq!(out.status.code(), Some(1), "verify: {}", explain(&out));
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verified["totals"]["missing"], 1, "{verified}");
}

#[test]
fn a_takeout_import_killed_mid_file_resumes_without_loss_or_duplicates() {
    let (email, password) = user(1);
    let mb = mailbox();
    let (kept, _, _) = counts(&mb);
    let extra = from_lines_message();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("takeout")).unwrap();
    std::fs::write(dir.path().join(format!("takeout/{email}.mbox")), takeout(&mb, &extra)).unwrap();
    let target = imap_target(&email, &password);
    let config = write_mbox_config(dir.path(), &target, "categories");
    // Small batches over several connections: kills land mid-batch.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[run]\nconnections_per_user = 3\nbatch_messages = 10\n");
    std::fs::write(&config, text).unwrap();
    let users = write_users(dir.path(), &email, &password);

    // Each run is killed as soon as it has copied something more: kills
    // land mid-import, whatever the machine's speed.
    let mut kills = 0;
    let mut mid_import = false;
    let mut copied = 0;
    for _ in 0..6 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["migrate", "-q", "--config", config.to_str().unwrap(), "--users"])
            .arg(&users)
            .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let now = target
                .folders(&email)
                .iter()
                .map(|f| f.messages as usize)
                .sum::<usize>();
            if now > copied {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if finished {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        copied = target.messages(&email).len();
        mid_import |= copied > 0 && copied < kept + 1;
    }
    assert!(mid_import, "no kill landed in the middle of the import ({kills} kills)");
    migrate(&config, &users, &[]);
    let got = target.messages(&email);
    assert_eq!(got.len(), kept + 1, "after {kills} kills: every message exactly once");
    let got = by_message_id(&got);
    for (m, p) in mb.messages.iter().zip(&mb.places).filter(|(_, p)| !p.left_out()) {
        let id = mailgen::message_id(&m.raw).unwrap();
        let copies = got.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(copies.len(), 1, "{id}: exactly once after {kills} kills");
        assert_eq!(copies[0].folder, main_folder(p), "{id}");
    }
}

#[test]
fn indexing_a_takeout_file_keeps_memory_bounded_whatever_one_message_weighs() {
    let (email, password) = user(1);
    let target = Dovecot::start(DovecotOptions {
        users: vec![(email.clone(), password.clone())],
        master: Some(("admin".into(), ADMIN_PASSWORD.into())),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("takeout")).unwrap();
    // A 300 MB message whose body has no line break, then an ordinary one:
    // the index must not hold either body.
    let mut mbox = b"From 1 Wed Feb 16 22:59:48 +0000 2022\r\nX-Gmail-Labels: Inbox\r\nSubject: huge\r\n\r\n".to_vec();
    mbox.resize(mbox.len() + 300_000_000, b'x');
    mbox.extend_from_slice(
        b"\r\n\r\nFrom 2 Wed Feb 16 22:59:49 +0000 2022\r\nX-Gmail-Labels: Inbox\r\nSubject: small\r\n\r\nhello\r\n",
    );
    std::fs::write(dir.path().join(format!("takeout/{email}.mbox")), &mbox).unwrap();
    drop(mbox);
    let config = write_mbox_config(dir.path(), &target, "folders");
    std::fs::write(
        dir.path().join("users.csv"),
        format!("EmailAddress,UserName,Password\r\n{email},{email},{password}\r\n"),
    )
    .unwrap();
    let rss_file = dir.path().join("rss.txt");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_cutover"))
        .args(["migrate", "--dry-run", "--json", "--config"])
        .arg(&config)
        .args(["--users", "users.csv"])
        .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let rss_kib: u64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap();
    assert!(
        rss_kib < 100 * 1024,
        "peak memory {rss_kib} KiB while indexing a 300 MB message"
    );
}
