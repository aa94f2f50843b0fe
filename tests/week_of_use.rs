//! A week of normal use, then one `cutover migrate` (the one-way sync's
//! acceptance scenario).
//!
//! A mailbox is copied from a real Dovecot; then a scripted week of use
//! changes the source the way a user does until cutover day: mail filed
//! into another folder both ways, a folder renamed, a nested folder moved
//! to the top level, read / unread / flagged / answered changes and a
//! keyword, a message filed and then flagged in its new place, three
//! messages expunged, and new mail. One `cutover migrate` must then leave
//! the target equal to the source — every folder holding exactly the
//! source's messages with the source's flags (as far as the target keeps
//! them), no message anywhere twice, no folder the source does not have —
//! with Dovecot's own logout statistics showing message bodies fetched for
//! the new mail only; the three deleted messages' copies stay where they
//! were and `status` counts them as deleted on source. `--mirror-deletions`
//! then deletes exactly those, and a further run changes nothing and
//! fetches no body.
//!
//! The scenario runs for an IMAP target (a second Dovecot), a Maildir
//! target and the Graph emulator, each with the source's CONDSTORE and
//! QRESYNC as Dovecot offers them and hidden by a relay (so flag changes
//! are found by reading every flag). The six runs share nothing and run
//! at once, in one test's threads: most of each is waiting on servers and
//! processes, so together they take little longer than the slowest alone.
//!
//! Every claim of the scenario is checked and what fails is collected, so
//! one run names every claim that does not hold (per target and variant)
//! instead of stopping at the first.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use common::{ADMIN_PASSWORD, explain, sha, user, user_status};
use support::emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
use support::mailgen::{self, GenMessage};
use support::relay::Relay;
use support::{Dovecot, DovecotOptions, SessionStats, StoredMessage};

/// The mailbox before the week: nested folders, a role folder with a
/// subfolder, a folder two levels down; 150 messages with generated flags.
const MAILBOX: [(&str, usize); 5] = [
    ("INBOX", 40),
    ("Sent", 25),
    ("Archive", 25),
    ("Archive/2023", 30),
    ("Projects/Alpha", 30),
];

/// The new mail of the week, by folder (after the renames).
const NEW_MAIL: [(&str, usize); 3] = [("INBOX", 3), ("Sent", 1), ("Alpha", 2)];

/// Messages the week files into another folder (4 + 3 both ways, and the
/// one filed and then flagged).
const MOVED: usize = 8;

/// Messages the week expunges: (folder after the renames, UID).
const EXPUNGED: [(&str, u32); 3] = [("INBOX", 20), ("Sent", 12), ("Archive/Old2023", 7)];

const GRAPH_SECRET: &str = "graph-s3cret-value";
const GRAPH_SECRET_ENV: &str = "CUTOVER_TEST_GRAPH_SECRET";
/// Emulated durations (and cutover's Exchange budgets) at this fraction of
/// real time.
const EMU_TIME_SCALE: f64 = 0.01;

/// The scenario for the three targets, each with CONDSTORE offered and
/// hidden: six runs at once, in threads (they share nothing but the CPU);
/// fails with every claim that did not hold in any of them.
#[test]
fn a_week_of_use_then_one_migrate_leaves_every_target_equal_to_the_source() {
    let started = Instant::now();
    let failed: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = [Kind::Imap, Kind::Maildir, Kind::Graph]
            .into_iter()
            .flat_map(|kind| [(kind, true), (kind, false)])
            .map(|(kind, condstore)| s.spawn(move || scenario(kind, condstore)))
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    eprintln!("the six runs took {:?}", started.elapsed());
    assert!(
        failed.is_empty(),
        "{} claims of the week-of-use scenario do not hold:\n- {}",
        failed.len(),
        failed.join("\n- ")
    );
}

// --- the scenario -----------------------------------------------------------------

/// What failed, each line naming the variant and the phase.
struct Findings {
    variant: String,
    phase: &'static str,
    failed: Vec<String>,
}

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failed
                .push(format!("[{}] {}: {}", self.variant, self.phase, what()));
        }
    }

    fn all(&mut self, problems: Vec<String>) {
        for p in problems {
            self.check(false, || p);
        }
    }
}

fn scenario(kind: Kind, condstore: bool) -> Vec<String> {
    let started = Instant::now();
    let (email, password) = user(1);
    let source = Dovecot::start(DovecotOptions {
        users: vec![(email.clone(), password.clone())],
        ..Default::default()
    });
    let relay = if condstore {
        Relay::start(source.port())
    } else {
        Relay::hiding_capabilities(source.port(), &["CONDSTORE", "QRESYNC"])
    };
    let target = TargetSide::start(kind, &email, &password);
    let run = Run::new(relay.port(), &target, &email, &password);
    let mut f = Findings {
        variant: format!("{kind:?}, {}", if condstore { "CONDSTORE" } else { "CONDSTORE hidden" }),
        phase: "first copy",
        failed: Vec::new(),
    };

    // The mailbox, copied once: the starting point, not a claim.
    let filed = fill(&source, &email);
    let out = run.cutover(&["migrate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "[{}] first copy: {}",
        f.variant,
        explain(&out)
    );
    let problems = compare(kind, &source.messages(&email), &target.copies(&run, &email));
    assert!(problems.is_empty(), "[{}] first copy: {problems:#?}", f.variant);

    // The week.
    let expunged = week(&source, &email, &filed);
    let after_week = source.messages(&email);
    assert!(
        after_week
            .iter()
            .any(|m| m.raw == filed.raw && m.folder == "Alpha" && m.flags.iter().any(|f| f == "\\Flagged")),
        "the week did not file and flag {:?}",
        mailgen::message_id(&filed.raw)
    );
    let source_folders: BTreeSet<String> = source.folders(&email).into_iter().map(|s| s.name).collect();
    for folder in NEW_MAIL.map(|(f, _)| f).iter().chain(&EXPUNGED.map(|(f, _)| f)) {
        assert!(
            source_folders.contains(*folder),
            "the week left no {folder}: {source_folders:?}"
        );
    }

    // One migrate.
    f.phase = "the migrate after the week";
    let before = settled_stats(&source, &relay);
    let streams_before = relay.client_streams().len();
    let out = run.cutover(&["migrate"]);
    let stats = settled_stats(&source, &relay);
    f.check(out.status.code() == Some(0), || format!("exit code: {}", explain(&out)));
    let mut want = after_week.clone();
    want.extend(expunged.iter().cloned());
    f.all(compare(kind, &want, &target.copies(&run, &email)));
    f.all(orphans(kind, &source_folders, &target.folders(&run, &email)));
    let new_mail: usize = NEW_MAIL.iter().map(|(_, n)| n).sum();
    f.check(stats.body_count - before.body_count == new_mail as u64, || {
        format!(
            "the source sent {} message bodies (Dovecot's logout statistics), not the {new_mail} of the new mail",
            stats.body_count - before.body_count
        )
    });
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = summary_line(&said, &email);
    f.check(summary.contains(&format!("({new_mail} copied, 0 failed")), || {
        format!("the summary does not say {new_mail} copied, 0 failed: {summary:?}")
    });
    f.check(summary.contains(&format!(", {MOVED} moved")), || {
        format!("the summary does not say {MOVED} moved: {summary:?}")
    });
    f.check(summary.contains("flag changes written"), || {
        format!("the summary counts no flag change: {summary:?}")
    });
    let deleted_on_source = user_status(&run.status(), &email)["deleted_on_source"].as_u64();
    f.check(deleted_on_source == Some(EXPUNGED.len() as u64), || {
        format!(
            "status --json says deleted_on_source {deleted_on_source:?}, not {}",
            EXPUNGED.len()
        )
    });
    let sent: String = relay.client_streams()[streams_before..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    f.check(sent.contains("CHANGEDSINCE") == condstore, || {
        format!(
            "CHANGEDSINCE sent: {}, CONDSTORE offered: {condstore}",
            sent.contains("CHANGEDSINCE")
        )
    });

    // The final pass deletes exactly the copies of the deleted messages.
    f.phase = "migrate --mirror-deletions";
    let out = run.cutover(&["migrate", "--mirror-deletions"]);
    f.check(out.status.code() == Some(0), || format!("exit code: {}", explain(&out)));
    let summary = summary_line(&String::from_utf8_lossy(&out.stderr), &email);
    f.check(
        summary.contains(&format!(", {} deleted as on the source", EXPUNGED.len())),
        || format!("the summary does not say {} deleted: {summary:?}", EXPUNGED.len()),
    );
    f.all(compare(kind, &after_week, &target.copies(&run, &email)));
    f.all(orphans(kind, &source_folders, &target.folders(&run, &email)));
    let deleted_on_source = user_status(&run.status(), &email)["deleted_on_source"].as_u64();
    f.check(deleted_on_source == Some(0), || {
        format!("status --json says deleted_on_source {deleted_on_source:?} after mirroring")
    });

    // And then there is nothing left to do.
    f.phase = "the migrate after that";
    let snapshot = target.snapshot(&run, &email);
    let before = settled_stats(&source, &relay);
    let streams_before = relay.client_streams().len();
    let out = run.cutover(&["migrate"]);
    let stats = settled_stats(&source, &relay);
    f.check(out.status.code() == Some(0), || format!("exit code: {}", explain(&out)));
    f.check(target.snapshot(&run, &email) == snapshot, || {
        "the target changed".into()
    });
    f.check(stats.body_count == before.body_count, || {
        format!(
            "the source sent {} message bodies",
            stats.body_count - before.body_count
        )
    });
    let asked: Vec<String> = relay.client_streams()[streams_before..]
        .iter()
        .flat_map(|s| {
            String::from_utf8_lossy(s)
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_uppercase();
                    l.contains("FETCH") && (l.contains("BODY[]") || l.contains("BODY.PEEK[]"))
                })
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    f.check(asked.is_empty(), || format!("bodies asked for: {asked:?}"));
    let summary = summary_line(&String::from_utf8_lossy(&out.stderr), &email);
    f.check(
        summary.contains("(0 copied, 0 failed")
            && !["moved", "flag changes", "deleted", "renamed"]
                .iter()
                .any(|w| summary.contains(w)),
        || format!("the summary says something was done: {summary:?}"),
    );
    f.all(compare(kind, &after_week, &target.copies(&run, &email)));
    f.check(source.messages(&email) == after_week, || "the source changed".into());

    eprintln!("[{}] took {:?}", f.variant, started.elapsed());
    f.failed
}

/// The mailbox of [`MAILBOX`], with the generator's flags (read, flagged,
/// answered, drafts, keywords). Returns Sent's third message (UID 3), which
/// the week files into another folder and then flags.
fn fill(source: &Dovecot, email: &str) -> GenMessage {
    let total: usize = MAILBOX.iter().map(|(_, n)| n).sum();
    let mut all = mailgen::generate(7001, total, 2000).into_iter();
    let mut filed = None;
    for (folder, n) in MAILBOX {
        let msgs: Vec<GenMessage> = all.by_ref().take(n).collect();
        source.deliver(email, folder, &msgs);
        if folder == "Sent" {
            filed = Some(msgs[2].clone());
        }
    }
    let filed: GenMessage = filed.expect("a Sent folder");
    assert!(
        !filed.flags.iter().any(|f| f == "\\Flagged"),
        "the message to file and then flag is flagged already: {filed:?}"
    );
    filed
}

/// The week on the source (`filed` is Sent's UID 3); returns the expunged
/// messages as they were just before (folder names after the renames).
fn week(source: &Dovecot, email: &str, filed: &GenMessage) -> Vec<StoredMessage> {
    let doveadm = |args: &[&str]| {
        source.doveadm(args);
    };
    let flags = |verb: &str, flags: &str, query: &[&str]| {
        let mut args = vec!["flags", verb, "-u", email, flags];
        args.extend_from_slice(query);
        doveadm(&args);
    };
    // Mail filed into another folder, both ways.
    doveadm(&["move", "-u", email, "Archive", "mailbox", "INBOX", "uid", "1:4"]);
    doveadm(&["move", "-u", email, "INBOX", "mailbox", "Archive", "uid", "1:3"]);
    // A folder renamed, and a nested folder moved to the top level.
    doveadm(&[
        "mailbox",
        "rename",
        "-s",
        "-u",
        email,
        "Archive/2023",
        "Archive/Old2023",
    ]);
    doveadm(&["mailbox", "rename", "-s", "-u", email, "Projects/Alpha", "Alpha"]);
    // Read, unread, flagged, unflagged, answered, a keyword.
    flags("add", "\\Seen", &["mailbox", "INBOX", "uid", "5:10"]);
    flags("remove", "\\Seen", &["mailbox", "Sent", "uid", "4:8"]);
    flags("add", "\\Flagged", &["mailbox", "Archive", "uid", "10:12"]);
    flags("remove", "\\Flagged", &["mailbox", "Alpha", "all"]);
    flags("add", "\\Answered", &["mailbox", "Archive/Old2023", "uid", "1:3"]);
    flags("add", "ProjectX", &["mailbox", "INBOX", "uid", "11"]);
    // A message filed, then flagged in its new place.
    let id = mailgen::message_id(&filed.raw).expect("generated mail has a Message-ID");
    doveadm(&["move", "-u", email, "Alpha", "mailbox", "Sent", "uid", "3"]);
    flags("add", "\\Flagged", &["mailbox", "Alpha", "header", "Message-ID", &id]);
    // Three deleted.
    let before = source.messages(email);
    let mut expunged = Vec::new();
    for (folder, uid) in EXPUNGED {
        let m = before
            .iter()
            .find(|m| m.folder == folder && m.uid == uid)
            .unwrap_or_else(|| panic!("{folder} UID {uid}"));
        expunged.push(m.clone());
        source.expunge(email, folder, uid);
    }
    // New mail.
    let total: usize = NEW_MAIL.iter().map(|(_, n)| n).sum();
    let mut new = mailgen::generate(7002, total, 1500).into_iter();
    for (folder, n) in NEW_MAIL {
        let msgs: Vec<GenMessage> = new.by_ref().take(n).collect();
        source.deliver(email, folder, &msgs);
    }
    expunged
}

/// The source's session totals once every session so far has logged out:
/// as many as connections went through the relay (nothing else logs in to
/// the source; each session is logged as its process exits, shortly after
/// the client left).
fn settled_stats(source: &Dovecot, relay: &Relay) -> SessionStats {
    source.wait_for_sessions(relay.client_streams().len() as u64, Duration::from_secs(15))
}

/// The user's line of the run's summary on stderr.
fn summary_line(stderr: &str, email: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| l.contains(&format!("{email}: ")) && l.contains(" copied, "))
        .unwrap_or_default()
        .to_owned()
}

// --- comparing ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Imap,
    Maildir,
    Graph,
}

/// A message as the target holds it, in the terms of `kind`: the folder
/// as that target names it, the bytes, the flags it keeps, the date.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetMessage {
    folder: String,
    raw: Vec<u8>,
    flags: Vec<String>,
    date: i64,
}

/// Where a source folder is in the target: its name (IMAP, Maildir) or
/// its Exchange path (role folders under their Exchange names).
fn place(kind: Kind, folder: &str) -> String {
    if kind != Kind::Graph {
        return folder.to_owned();
    }
    let mut parts: Vec<&str> = folder.split('/').collect();
    parts[0] = match parts[0] {
        "INBOX" => "Inbox",
        "Sent" => "Sent Items",
        "Trash" => "Deleted Items",
        "Junk" => "Junk Email",
        other => other,
    };
    parts.join("/")
}

/// The flags `kind` keeps: all (IMAP); the system flags (Maildir's info
/// letters); read, flagged and the categories made of keywords (Graph).
fn kept_flags(kind: Kind, flags: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = flags
        .iter()
        .filter(|f| match kind {
            Kind::Imap => true,
            Kind::Maildir => ["\\Answered", "\\Flagged", "\\Seen", "\\Draft", "\\Deleted"].contains(&f.as_str()),
            Kind::Graph => {
                ["\\Flagged", "\\Seen"].contains(&f.as_str()) || !(f.starts_with('\\') || f.starts_with('$'))
            }
        })
        .cloned()
        .collect();
    mailgen::sort_flags(&mut kept);
    kept
}

fn describe(raw: &[u8]) -> String {
    mailgen::message_id(raw).unwrap_or_else(|| format!("{} bytes", raw.len()))
}

/// Messages by (folder, bytes).
fn by_place(list: &[TargetMessage]) -> BTreeMap<(&str, &[u8]), Vec<&TargetMessage>> {
    let mut map: BTreeMap<(&str, &[u8]), Vec<&TargetMessage>> = BTreeMap::new();
    for c in list {
        map.entry((c.folder.as_str(), c.raw.as_slice())).or_default().push(c);
    }
    map
}

/// What differs between the source messages `want` (as the target should
/// hold them) and what the target holds, one line per kind of difference
/// and folder, with a few examples: messages missing from a folder or held
/// there although the source has them elsewhere (or nowhere), flags or
/// dates that differ, messages held more than once.
fn compare(kind: Kind, want: &[StoredMessage], got: &[TargetMessage]) -> Vec<String> {
    let want: Vec<TargetMessage> = want
        .iter()
        .map(|m| TargetMessage {
            folder: place(kind, &m.folder),
            raw: m.raw.clone(),
            flags: kept_flags(kind, &m.flags),
            date: m.internal_date,
        })
        .collect();
    let (wanted, held) = (by_place(&want), by_place(got));
    let mut source_folders: BTreeMap<&[u8], BTreeSet<&str>> = BTreeMap::new();
    for c in &want {
        source_folders.entry(&c.raw).or_default().insert(&c.folder);
    }
    let source_folders_of = |raw: &[u8]| -> String {
        let folders = source_folders.get(raw).cloned().unwrap_or_default();
        if folders.is_empty() {
            "nowhere".to_owned()
        } else {
            format!("in {folders:?}")
        }
    };
    // (what, folder) -> examples
    let mut found: BTreeMap<(&str, String), Vec<String>> = BTreeMap::new();
    for (&(folder, raw), w) in &wanted {
        let folder = folder.to_owned();
        let h = held.get(&(folder.as_str(), raw)).map(Vec::as_slice).unwrap_or(&[]);
        let what = describe(&w[0].raw);
        if h.len() < w.len() {
            found
                .entry(("messages missing", folder.clone()))
                .or_default()
                .push(what);
        } else if h.len() > w.len() {
            found
                .entry(("messages held more often than the source has them", folder.clone()))
                .or_default()
                .push(format!("{what} {} times, not {}", h.len(), w.len()));
        } else {
            let mut w_flags: Vec<_> = w.iter().map(|c| (&c.flags, c.date)).collect();
            let mut h_flags: Vec<_> = h.iter().map(|c| (&c.flags, c.date)).collect();
            w_flags.sort();
            h_flags.sort();
            if w_flags != h_flags {
                found
                    .entry(("messages whose (flags, date) differ", folder.clone()))
                    .or_default()
                    .push(format!("{what}: {h_flags:?}, the source {w_flags:?}"));
            }
        }
    }
    for (&(folder, raw), h) in &held {
        if !wanted.contains_key(&(folder, raw)) {
            found
                .entry(("messages the source does not have there", folder.to_owned()))
                .or_default()
                .push(format!(
                    "{} (the source has it {})",
                    describe(&h[0].raw),
                    source_folders_of(raw)
                ));
        }
    }
    // Held more than once anywhere, within or across folders.
    let mut count: BTreeMap<&[u8], (usize, usize, BTreeSet<&str>)> = BTreeMap::new();
    for c in &want {
        count.entry(&c.raw).or_default().0 += 1;
    }
    for c in got {
        let e = count.entry(&c.raw).or_default();
        e.1 += 1;
        e.2.insert(&c.folder);
    }
    for (raw, (w, h, folders)) in &count {
        if h > w && *h > 1 {
            found
                .entry(("messages held more than once", format!("{folders:?}")))
                .or_default()
                .push(format!("{} {h} times (the source has it {w} times)", describe(raw)));
        }
    }
    let mut problems: Vec<String> = found
        .into_iter()
        .map(|((what, folder), examples)| {
            let shown: Vec<&String> = examples.iter().take(3).collect();
            let more = if examples.len() > shown.len() { ", ..." } else { "" };
            format!("{folder}: {} {what}: {shown:?}{more}", examples.len())
        })
        .collect();
    if got.len() != want.len() {
        problems.push(format!("{} messages in the target, {} wanted", got.len(), want.len()));
    }
    problems
}

/// Target folders the source has no counterpart of (not one of its
/// folders, nor a parent of one).
fn orphans(kind: Kind, source_folders: &BTreeSet<String>, target_folders: &BTreeSet<String>) -> Vec<String> {
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    for f in source_folders {
        let placed = place(kind, f);
        let parts: Vec<&str> = placed.split('/').collect();
        for depth in 1..=parts.len() {
            allowed.insert(parts[..depth].join("/"));
        }
    }
    let orphans: Vec<&String> = target_folders.difference(&allowed).collect();
    if orphans.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "target folders the source does not have: {orphans:?} (source: {source_folders:?})"
        )]
    }
}

// --- the targets --------------------------------------------------------------------

enum TargetSide {
    /// A second Dovecot (logged in to as `{email}*admin`), and the
    /// folders it had before the first run (its role folders).
    Imap(Box<Dovecot>, BTreeSet<String>),
    /// `out/` beside the config.
    Maildir,
    Graph(Emu),
}

impl TargetSide {
    fn start(kind: Kind, email: &str, password: &str) -> TargetSide {
        match kind {
            Kind::Imap => {
                let server = Dovecot::start(DovecotOptions {
                    users: vec![(email.to_owned(), password.to_owned())],
                    master: Some(("admin".into(), ADMIN_PASSWORD.into())),
                    ..Default::default()
                });
                let before = server.folders(email).into_iter().map(|f| f.name).collect();
                TargetSide::Imap(Box::new(server), before)
            }
            Kind::Maildir => TargetSide::Maildir,
            Kind::Graph => TargetSide::Graph(Emu::start()),
        }
    }

    /// The `[target]` section.
    fn config(&self) -> String {
        match self {
            TargetSide::Imap(server, _) => format!(
                "[target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
                 login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TEST_ADMIN_PW\"\n",
                server.port()
            ),
            TargetSide::Maildir => "[target]\nkind = \"maildir\"\npath = \"out\"\n".to_owned(),
            TargetSide::Graph(emu) => format!(
                "[target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
                 client_secret_env = \"{GRAPH_SECRET_ENV}\"\nendpoint = \"{base}\"\nauthority = \"{base}\"\n\
                 write_mode = \"import-mime\"\ntimeout_seconds = 20\nlimits_time_scale = {EMU_TIME_SCALE}\n",
                base = emu.base
            ),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            TargetSide::Imap(..) => Kind::Imap,
            TargetSide::Maildir => Kind::Maildir,
            TargetSide::Graph(_) => Kind::Graph,
        }
    }

    /// Every message the target holds.
    fn copies(&self, run: &Run, email: &str) -> Vec<TargetMessage> {
        let kind = self.kind();
        match self {
            TargetSide::Imap(server, _) => server
                .messages(email)
                .into_iter()
                .map(|m| TargetMessage {
                    folder: m.folder,
                    raw: m.raw,
                    flags: m.flags,
                    date: m.internal_date,
                })
                .collect(),
            TargetSide::Maildir => maildir_copies(&run.maildir(email)),
            TargetSide::Graph(emu) => emu.dump(email)["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let mut flags = Vec::new();
                    if t["isRead"] == true {
                        flags.push("\\Seen".to_owned());
                    }
                    if t["flag"]["flagStatus"] == "flagged" {
                        flags.push("\\Flagged".to_owned());
                    }
                    flags.extend(strings(&t["categories"]));
                    TargetMessage {
                        folder: strings(&t["folderPath"]).join("/"),
                        raw: STANDARD
                            .decode(t["mimeBase64"].as_str().expect("import-mime keeps the MIME"))
                            .unwrap(),
                        flags: kept_flags(kind, &flags),
                        date: chrono::DateTime::parse_from_rfc3339(t["receivedDateTime"].as_str().unwrap())
                            .unwrap()
                            .timestamp(),
                    }
                })
                .collect(),
        }
    }

    /// The folders the run made: every folder but those the target had
    /// before (the IMAP target's role folders, Exchange's well-known
    /// folders).
    fn folders(&self, run: &Run, email: &str) -> BTreeSet<String> {
        match self {
            TargetSide::Imap(server, before) => server
                .folders(email)
                .into_iter()
                .map(|f| f.name)
                .filter(|f| !before.contains(f))
                .collect(),
            TargetSide::Maildir => {
                let root = run.maildir(email);
                std::fs::read_dir(&root)
                    .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
                    .flatten()
                    .filter(|e| e.path().join("cur").is_dir())
                    .map(|e| maildir_folder(&e.file_name().to_string_lossy()))
                    .collect()
            }
            TargetSide::Graph(emu) => emu.dump(email)["folders"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["wellKnownName"].is_null())
                .map(|f| strings(&f["path"]).join("/"))
                .collect(),
        }
    }

    /// What a run that does nothing must leave as it was.
    fn snapshot(&self, run: &Run, email: &str) -> Value {
        match self {
            TargetSide::Imap(server, _) => {
                let messages: Vec<Value> = server
                    .messages(email)
                    .iter()
                    .map(|m| serde_json::json!([m.folder, m.uid, m.flags, format!("{:x}", sha(&m.raw))]))
                    .collect();
                let folders: Vec<Value> = server
                    .folders(email)
                    .iter()
                    .map(|f| serde_json::json!([f.name, f.uidvalidity, f.uidnext]))
                    .collect();
                serde_json::json!([messages, folders])
            }
            TargetSide::Maildir => {
                let mut files: Vec<String> = Vec::new();
                let mut dirs = vec![run.maildir(email)];
                while let Some(dir) = dirs.pop() {
                    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let path = e.path();
                        if path.is_dir() {
                            dirs.push(path.clone());
                        }
                        files.push(path.display().to_string());
                    }
                }
                files.sort();
                serde_json::json!(files)
            }
            TargetSide::Graph(emu) => {
                let dump = emu.dump(email);
                let mut messages: Vec<Value> = dump["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| serde_json::json!([m["id"], m["folderId"], m["lastModifiedDateTime"]]))
                    .collect();
                messages.sort_by_key(|v| v.to_string());
                serde_json::json!([messages, dump["folders"], emu.writes()])
            }
        }
    }
}

/// Every message of a Maildir++ tree: `cur/` and `new/` of the base
/// (INBOX) and of each `.Folder` directory; flags from the info letters,
/// the date from the mtime.
fn maildir_copies(root: &Path) -> Vec<TargetMessage> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().join("cur").is_dir() {
            continue;
        }
        out.extend(maildir_folder_copies(&entry.path(), &maildir_folder(&name)));
    }
    if root.join("cur").is_dir() {
        out.extend(maildir_folder_copies(root, "INBOX"));
    }
    out
}

fn maildir_folder_copies(dir: &Path, folder: &str) -> Vec<TargetMessage> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let letters = name.rsplit_once(":2,").map(|(_, l)| l).unwrap_or("");
            let mut flags: Vec<String> = [
                ('D', "\\Draft"),
                ('F', "\\Flagged"),
                ('R', "\\Answered"),
                ('S', "\\Seen"),
                ('T', "\\Deleted"),
            ]
            .iter()
            .filter(|(l, _)| letters.contains(*l))
            .map(|(_, f)| f.to_string())
            .collect();
            mailgen::sort_flags(&mut flags);
            let mtime = e.metadata().unwrap().modified().unwrap();
            out.push(TargetMessage {
                folder: folder.to_owned(),
                raw: std::fs::read(e.path()).unwrap(),
                flags,
                date: mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
            });
        }
    }
    out
}

/// The folder of a Maildir++ directory (`.Archive.Old2023` →
/// `Archive/Old2023`; the test's folder names are ASCII without dots).
fn maildir_folder(dir: &str) -> String {
    dir.strip_prefix('.').unwrap_or(dir).replace('.', "/")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

// --- the Graph emulator -----------------------------------------------------------

struct Emu {
    _server: RunningEmulator,
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Emu {
    fn start() -> Emu {
        let server = Emulator::new()
            .client_secret(GRAPH_SECRET)
            .seed(7)
            .time_scale(EMU_TIME_SCALE)
            .quiet()
            .start();
        Emu {
            base: server.base_url.clone(),
            _server: server,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    fn admin(&self, path: &str) -> Value {
        let url = format!("{}/_emulator/{path}", self.base);
        self.rt.block_on(async {
            let resp = self.http.get(url).send().await.unwrap();
            let status = resp.status();
            let body = resp.bytes().await.unwrap();
            assert!(status.is_success(), "emulator {path}: {status}");
            serde_json::from_slice(&body).unwrap()
        })
    }

    /// The stored mailbox: folders and messages (with their MIME).
    fn dump(&self, email: &str) -> Value {
        self.admin(&format!("mailboxes/{email}"))
    }

    /// Requests that changed a mailbox so far.
    fn writes(&self) -> u64 {
        let stats = self.admin("stats");
        ["POST", "PATCH", "PUT", "DELETE"]
            .iter()
            .map(|m| stats["total"]["by_method"][m].as_u64().unwrap_or(0))
            .sum()
    }
}

// --- the runs -----------------------------------------------------------------------

/// A config and users file in a directory of their own (own checkpoint).
struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new(source_port: u16, target: &TargetSide, email: &str, password: &str) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {source_port}\nsecurity = \"plain\"\n\n{}\n[state]\npath = \"state.db\"\n",
            target.config()
        );
        std::fs::write(dir.path().join("cutover.toml"), config).unwrap();
        std::fs::write(
            dir.path().join("users.csv"),
            format!("EmailAddress,UserName,Password\r\n{email},{email},{password}\r\n"),
        )
        .unwrap();
        Run { dir }
    }

    fn cutover(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .args(["--config", "cutover.toml"])
            .args(if args[0] == "status" {
                &[][..]
            } else {
                &["--users", "users.csv"][..]
            })
            .env("CUTOVER_TEST_ADMIN_PW", ADMIN_PASSWORD)
            .env(GRAPH_SECRET_ENV, GRAPH_SECRET)
            .current_dir(self.dir.path())
            .output()
            .expect("run cutover")
    }

    fn status(&self) -> Value {
        let out = self.cutover(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", explain(&out));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    /// The Maildir target's tree of `email`.
    fn maildir(&self, email: &str) -> PathBuf {
        self.dir.path().join("out").join(email)
    }
}
