//! Contacts and calendars end to end: the real `cutover migrate` copies a
//! user's CalDAV calendars and CardDAV address books from a real Radicale
//! into the Graph emulator (and then into another Radicale account), after
//! the user's (empty) mail. What must hold: every event and contact once,
//! nothing ever sent to an attendee, a rerun that writes nothing and reads
//! only the sync-collection listings, and edits and deletions on the source
//! carried over as updates and kept copies.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use cutover::dav::{DavAuth, DavClient, DavOptions};
use cutover::secret::Secret;
use cutover::target::dav::DavTarget;
use support::emulator::{CLIENT, Emulator, TENANT};
use support::pim::SERIES;
use support::radicale::Radicale;

const SECRET: &str = "graph-s3cret-value";
const SECRET_ENV: &str = "CUTOVER_TEST_GRAPH_SECRET";
const EMAIL: &str = "alice@example.test";
const ALICE_PW: &str = "alice-Pw-4711";
const BOB_PW: &str = "bob-Pw-0815";

fn calendar(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cutover tests//EN\r\n{body}END:VCALENDAR\r\n")
}

const MEETING: &str = "BEGIN:VEVENT\r\nUID:meeting-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20250505T100000\r\nDTEND;TZID=Europe/Berlin:20250505T110000\r\n\
SUMMARY:Quarterly review\r\nORGANIZER;CN=Alice:mailto:alice@example.test\r\n\
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n\
ATTENDEE;CN=Carol;ROLE=OPT-PARTICIPANT:mailto:carol@example.com\r\n\
ATTENDEE;CN=Dan:mailto:dan@example.com\r\nEND:VEVENT\r\n";

fn all_day(summary: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:trip-1\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;VALUE=DATE:20250414\r\n\
DTEND;VALUE=DATE:20250417\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"
    )
}

fn new_york(summary: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:ny-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=America/New_York:20250610T090000\r\nDTEND;TZID=America/New_York:20250610T100000\r\n\
SUMMARY:{summary}\r\nEND:VEVENT\r\n"
    )
}

const TOKYO: &str = "BEGIN:VEVENT\r\nUID:tokyo-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Asia/Tokyo:20250701T180000\r\nDTEND;TZID=Asia/Tokyo:20250701T200000\r\n\
SUMMARY:Dinner in Tokyo\r\nEND:VEVENT\r\n";

fn card(uid: &str, name: &str, emails: &[&str]) -> String {
    let emails: String = emails.iter().map(|e| format!("EMAIL;TYPE=INTERNET:{e}\r\n")).collect();
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n{emails}END:VCARD\r\n")
}

const FIVE_MAILS: [&str; 5] = [
    "a1@example.com",
    "a2@example.com",
    "a3@example.com",
    "a4@example.com",
    "a5@example.com",
];

/// Alice's three calendars and two address books.
fn fill(dav: &Radicale) {
    dav.mkcalendar("alice", "work", "Work", &["VEVENT"]);
    dav.mkcalendar("alice", "home", "Home", &["VEVENT"]);
    dav.mkcalendar("alice", "travel", "Travel", &["VEVENT"]);
    dav.mkaddressbook("alice", "friends", "Friends");
    dav.mkaddressbook("alice", "colleagues", "Colleagues");
    dav.put("alice", "/alice/work/weekly-1.ics", &calendar(SERIES));
    dav.put("alice", "/alice/work/meeting-1.ics", &calendar(MEETING));
    dav.put("alice", "/alice/home/trip-1.ics", &calendar(&all_day("Easter trip")));
    dav.put("alice", "/alice/home/ny-1.ics", &calendar(&new_york("Call with NY")));
    dav.put("alice", "/alice/travel/tokyo-1.ics", &calendar(TOKYO));
    dav.put("alice", "/alice/friends/anna.vcf", &card("anna", "Anna", &FIVE_MAILS));
    dav.put(
        "alice",
        "/alice/friends/ben.vcf",
        &card("ben", "Ben", &["ben@example.com"]),
    );
    dav.put(
        "alice",
        "/alice/friends/cleo.vcf",
        &card("cleo", "Cleo", &["cleo@example.com"]),
    );
    dav.put(
        "alice",
        "/alice/colleagues/dora.vcf",
        &card("dora", "Dora", &["dora@example.com"]),
    );
    dav.put(
        "alice",
        "/alice/colleagues/emil.vcf",
        &card("emil", "Emil", &["emil@example.com"]),
    );
}

const COLLECTIONS: [&str; 5] = [
    "/alice/work/",
    "/alice/home/",
    "/alice/travel/",
    "/alice/friends/",
    "/alice/colleagues/",
];

/// A run directory: an empty Takeout mbox as the mail source, the Graph
/// emulator as the mail target, Radicale for contacts and calendars.
fn setup(root: &Path, name: &str, emu: &str, dav: &Radicale, pim_target: &str, csv_extra: (&str, &str)) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("mail")).unwrap();
    std::fs::write(dir.join(format!("mail/{EMAIL}.mbox")), "").unwrap();
    let config = format!(
        "[source]\nkind = \"mbox\"\npath = \"mail/{{email}}.mbox\"\n\n\
         [target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_env = \"{SECRET_ENV}\"\nendpoint = \"{emu}\"\nauthority = \"{emu}\"\ntimeout_seconds = 20\n\n\
         [state]\npath = \"state.db\"\n\n\
         [contacts_calendars]\nsource = \"dav\"\nurl = \"{url}\"\ntimeout_seconds = 10\n{pim_target}",
        url = dav.url(),
    );
    std::fs::write(dir.join("cutover.toml"), config).unwrap();
    std::fs::write(
        dir.join("users.csv"),
        format!(
            "EmailAddress,UserName,Password{}\r\n{EMAIL},alice,{ALICE_PW}{}\r\n",
            csv_extra.0, csv_extra.1
        ),
    )
    .unwrap();
    dir
}

fn cutover(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .args(["--config", "cutover.toml"])
        .env(SECRET_ENV, SECRET)
        .current_dir(dir)
        .output()
        .expect("run cutover")
}

/// Runs `migrate --json` (with `extra` arguments); the `pim` counts of its
/// `user_finished` event.
fn migrate_with(dir: &Path, extra: &[&str]) -> Value {
    migrate_ending(dir, extra, "done")
}

/// Runs `migrate --json`, expecting the user to end in `state` (a user
/// with items that could not be copied ends "partial", exit 1); the `pim`
/// counts of its `user_finished` event.
fn migrate_ending(dir: &Path, extra: &[&str], state: &str) -> Value {
    let mut args = vec!["migrate", "--users", "users.csv", "--json"];
    args.extend_from_slice(extra);
    let out = cutover(dir, &args);
    let want_exit = if state == "done" { 0 } else { 1 };
    assert_eq!(
        out.status.code(),
        Some(want_exit),
        "migrate: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "user_finished")
        .map(|e| {
            assert_eq!(e["state"], state, "{e}");
            e["pim"].clone()
        })
        .expect("a user_finished event")
}

fn migrate(dir: &Path) -> Value {
    migrate_with(dir, &[])
}

/// The `pim` counts of `user_finished`:
/// contacts written, failed, kept; events written, failed, kept.
fn pim_counts(pim: &Value) -> [u64; 6] {
    [
        "contacts_written",
        "contacts_failed",
        "contacts_kept",
        "events_written",
        "events_failed",
        "events_kept",
    ]
    .map(|k| pim[k].as_u64().unwrap_or_else(|| panic!("{k} in {pim}")))
}

/// (events, contacts) figures of `status --json`.
fn figures(dir: &Path) -> (Value, Value) {
    let out = cutover(dir, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let user = &v["users"][0];
    (user["events"].clone(), user["contacts"].clone())
}

/// One GET of the emulator's admin API (a runtime of its own: the test
/// itself is synchronous, like the cutover runs it starts).
fn get(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn pim(emu: &str) -> Value {
    get(&format!(
        "{emu}/_emulator/mailboxes/{EMAIL}/pim?start=2025-01-01T00:00:00Z&end=2026-01-01T00:00:00Z"
    ))
}

fn subjects(pim: &Value) -> Vec<String> {
    let mut s: Vec<String> = pim["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    s.sort();
    s
}

fn contact_names(pim: &Value) -> Vec<String> {
    let mut s: Vec<String> = pim["contacts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| c["displayName"].as_str().unwrap_or_default().to_owned())
        .collect();
    s.sort();
    s
}

fn reports(dav: &Radicale) -> Vec<usize> {
    COLLECTIONS.iter().map(|c| dav.requests("REPORT", c)).collect()
}

#[test]
fn calendars_and_contacts_go_to_graph_once_then_only_changes_then_to_dav() {
    let dav = Radicale::start(&[("alice", ALICE_PW), ("bob", BOB_PW)]);
    fill(&dav);
    let emu_server = Emulator::new().client_secret(SECRET).seed(7).quiet().start();
    let emu = emu_server.base_url.clone();
    let root = tempfile::tempdir().unwrap();
    let dir = setup(root.path(), "graph", &emu, &dav, "", ("", ""));

    // A dry run reads the source and writes nothing anywhere.
    let dry = cutover(&dir, &["migrate", "--users", "users.csv", "--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let nothing = pim(&emu);
    assert_eq!(
        (subjects(&nothing).len(), contact_names(&nothing).len()),
        (0, 0),
        "{nothing:#}"
    );

    // First run: everything once, nothing sent to anyone.
    assert_eq!(pim_counts(&migrate(&dir)), [5, 0, 0, 5, 0, 0]);
    let first = pim(&emu);
    assert_eq!(
        subjects(&first),
        [
            "Call with NY",
            "Dinner in Tokyo",
            "Easter trip",
            "Quarterly review",
            "Standup"
        ],
        "{first:#}"
    );
    assert_eq!(contact_names(&first), ["Anna", "Ben", "Cleo", "Dora", "Emil"]);
    let anna = first["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["displayName"] == "Anna")
        .unwrap();
    assert!(
        anna["personalNotes"].as_str().unwrap_or("").contains("a5@example.com"),
        "the addresses Exchange cannot hold are kept in the notes: {anna:#}"
    );
    let stats = get(&format!("{emu}/_emulator/stats"));
    assert_eq!(stats["total"]["invitations_sent"].as_u64().unwrap_or(0), 0, "{stats:#}");
    assert_eq!(
        stats["total"]["cancellations_sent"].as_u64().unwrap_or(0),
        0,
        "{stats:#}"
    );
    let (events, contacts) = figures(&dir);
    assert_eq!(events["written"], 5, "{events}");
    assert_eq!(contacts["written"], 5, "{contacts}");

    // Second run: nothing written, and each collection read with one
    // sync-collection REPORT (no multiget).
    let before = reports(&dav);
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);
    let after = reports(&dav);
    for ((c, b), a) in COLLECTIONS.iter().zip(&before).zip(&after) {
        assert_eq!(a - b, 1, "{c}: only the sync-collection REPORT on a rerun");
    }
    assert_eq!(pim(&emu), first, "a rerun changes nothing in the mailbox");
    assert_eq!(figures(&dir), (events, contacts));

    // Edits and a deletion on the source: exactly those are carried over.
    dav.put(
        "alice",
        "/alice/home/trip-1.ics",
        &calendar(&all_day("Easter trip (Alps)")),
    );
    dav.put(
        "alice",
        "/alice/home/ny-1.ics",
        &calendar(&new_york("Call with NY office")),
    );
    dav.put(
        "alice",
        "/alice/friends/ben.vcf",
        &card("ben", "Benjamin", &["ben@example.com"]),
    );
    dav.put(
        "alice",
        "/alice/colleagues/dora.vcf",
        &card("dora", "Dorothea", &["dora@example.com"]),
    );
    dav.delete("alice", "/alice/friends/cleo.vcf");
    assert_eq!(pim_counts(&migrate(&dir)), [2, 0, 1, 2, 0, 0]);
    let third = pim(&emu);
    assert_eq!(
        subjects(&third),
        [
            "Call with NY office",
            "Dinner in Tokyo",
            "Easter trip (Alps)",
            "Quarterly review",
            "Standup"
        ]
    );
    assert_eq!(
        contact_names(&third),
        ["Anna", "Benjamin", "Cleo", "Dorothea", "Emil"],
        "updated in place; the contact deleted on the source is kept"
    );
    let ids = |v: &Value, what: &str| {
        let mut ids: Vec<String> = v[what]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    // An edited appointment is written afresh (Graph replaces a series with
    // its exceptions whole; nothing is sent for one): the other three keep
    // their ids, contacts are patched in place.
    let kept = ids(&third, "events")
        .iter()
        .filter(|id| ids(&first, "events").contains(id))
        .count();
    assert_eq!(kept, 3, "only the two edited events were rewritten");
    assert_eq!(ids(&third, "contacts"), ids(&first, "contacts"));
    let (events, contacts) = figures(&dir);
    assert_eq!(events["written"], 5);
    assert_eq!(contacts["written"], 4, "{contacts}");
    assert_eq!(contacts["deleted_on_source_kept"], 1, "{contacts}");
    let status = String::from_utf8_lossy(&cutover(&dir, &["status"]).stdout).into_owned();
    assert!(status.contains(&format!("{EMAIL}: contacts: 4 written")), "{status}");
    // A run that died between writing a contact and recording it: the
    // next one finds the copy and updates it instead of writing another.
    let db = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE pim_items SET state = 'writing', target_id = NULL, written_version = NULL WHERE source_key LIKE '%/anna.vcf'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    db.execute("UPDATE pim_collections SET sync_token = NULL", []).unwrap();
    drop(db);
    assert_eq!(pim_counts(&migrate(&dir)), [1, 0, 0, 0, 0, 0]);
    let fourth = pim(&emu);
    assert_eq!(
        ids(&fourth, "contacts"),
        ids(&first, "contacts"),
        "found, not written twice"
    );
    assert_eq!(subjects(&fourth), subjects(&third));

    let stats = get(&format!("{emu}/_emulator/stats"));
    assert_eq!(stats["total"]["invitations_sent"].as_u64().unwrap_or(0), 0);
    assert_eq!(stats["total"]["cancellations_sent"].as_u64().unwrap_or(0), 0);

    // The same source into another DAV account: every item once.
    let dir = setup(
        root.path(),
        "dav",
        &emu,
        &dav,
        &format!("target = \"dav\"\ntarget_url = \"{}\"\n", dav.url()),
        (",TargetUserName,TargetPassword", &format!(",bob,{BOB_PW}")),
    );
    assert_eq!(pim_counts(&migrate(&dir)), [4, 0, 0, 5, 0, 0]);
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);
    // The final pass mirrors a deletion on the source: one of the
    // mailbox's 8 copies is over the default max_delete_percent (10%), so
    // it is refused (the user partial, with why) until forced.
    dav.delete("alice", "/alice/colleagues/emil.vcf");
    assert_eq!(
        pim_counts(&migrate_ending(&dir, &["--mirror-deletions"], "partial")),
        [0; 6]
    );
    assert_eq!(figures(&dir).1["deleted"], 0);
    assert_eq!(
        pim_counts(&migrate_with(&dir, &["--mirror-deletions", "--force-deletions"])),
        [0; 6]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (calendars, books) = rt.block_on(async {
        let auth = DavAuth::Basic {
            user: "bob".into(),
            password: Secret::new(BOB_PW),
        };
        let client = DavClient::new(&dav.url(), auth, DavOptions::default()).unwrap();
        let bob = DavTarget::open(client).await.unwrap();
        let mut calendars = Vec::new();
        for c in &bob.existing().calendars {
            calendars.push((c.display_name.clone(), bob.list(c).await.unwrap().len()));
        }
        let mut books = Vec::new();
        for c in &bob.existing().address_books {
            books.push((c.display_name.clone(), bob.list(c).await.unwrap().len()));
        }
        calendars.sort();
        books.sort();
        (calendars, books)
    });
    let total = |v: &[(Option<String>, usize)]| v.iter().map(|(_, n)| n).sum::<usize>();
    assert_eq!(total(&calendars), 5, "{calendars:?}");
    assert_eq!(calendars.len(), 3, "{calendars:?}");
    assert_eq!(books, [(Some("Colleagues".into()), 1), (Some("Friends".into()), 2)]);
    let (_, contacts) = figures(&dir);
    assert_eq!(
        (contacts["written"].as_u64(), contacts["deleted"].as_u64()),
        (Some(3), Some(1)),
        "{contacts}"
    );
}

/// An event of the generated "Team" calendar: `n` in 1..=12, on its own
/// day of 2025 in one of five time zones (New York's crosses the March DST
/// switch as a weekly series).
fn team_event(n: u32, summary: &str) -> String {
    let zones = [
        "Europe/Berlin",
        "America/New_York",
        "Asia/Tokyo",
        "Australia/Sydney",
        "UTC",
    ];
    let zone = zones[(n as usize) % zones.len()];
    let rule = if n == 1 {
        "RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=MO\r\n"
    } else {
        ""
    };
    // The series starts on a Monday, as its rule says.
    let day = if n == 1 { 3 } else { n };
    format!(
        "BEGIN:VEVENT\r\nUID:team-{n}@example.test\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID={zone}:202503{day:02}T090000\r\nDTEND;TZID={zone}:202503{day:02}T100000\r\n{rule}\
SUMMARY:{summary}\r\nEND:VEVENT\r\n"
    )
}

/// A Google-style card: no UID, the contact named by FN.
fn google_card(n: u32, phone: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person {n}\r\nN:{n};Person;;;\r\n\
EMAIL;TYPE=INTERNET:person{n}@example.com\r\nTEL;TYPE=CELL:{phone}\r\nCATEGORIES:myContacts\r\nEND:VCARD\r\n"
    )
}

/// Alice's Google Takeout export: her own calendar (Google's corpus
/// export: a series with overrides, a meeting), a generated Team calendar
/// with a broken event, a Travel calendar; All Contacts (two corpus cards,
/// twelve generated ones and a broken card) and a label's subset.
/// `edited` of the team events and cards carry new text.
fn write_takeout(root: &Path, edited: u32) {
    let base = root.join(format!("takeout/{EMAIL}/Takeout"));
    std::fs::create_dir_all(base.join("Calendar")).unwrap();
    std::fs::create_dir_all(base.join("Contacts/All Contacts")).unwrap();
    std::fs::create_dir_all(base.join("Contacts/Friends")).unwrap();
    let corpus = |name: &str| std::fs::read_to_string(format!("tests/data/pim/{name}")).unwrap();
    std::fs::write(base.join(format!("Calendar/{EMAIL}.ics")), corpus("google.ics")).unwrap();
    let mut team = String::new();
    for n in 1..=12 {
        let summary = if n <= edited {
            format!("Team {n} (moved)")
        } else {
            format!("Team {n}")
        };
        team.push_str(&team_event(n, &summary));
    }
    team.push_str(
        "BEGIN:VEVENT\r\nUID:no-start@example.test\r\nSUMMARY:No start\r\nDTEND:20250101T110000Z\r\nEND:VEVENT\r\n",
    );
    std::fs::write(base.join("Calendar/Team.ics"), calendar(&team)).unwrap();
    std::fs::write(
        base.join("Calendar/Travel.ics"),
        calendar(&format!("{TOKYO}{}", all_day("Easter trip"))),
    )
    .unwrap();
    let mut cards = corpus("google.vcf");
    for n in 1..=12 {
        let phone = if n <= edited {
            format!("+1 555 01{n:02} 99")
        } else {
            format!("+1 555 01{n:02}")
        };
        cards.push_str(&google_card(n, &phone));
    }
    cards.push_str("BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:a card with nothing else\r\nEND:VCARD\r\n");
    std::fs::write(base.join("Contacts/All Contacts/All Contacts.vcf"), &cards).unwrap();
    std::fs::write(base.join("Contacts/Friends/Friends.vcf"), google_card(1, "+1 555 0101")).unwrap();
}

/// Points a run directory's `[contacts_calendars]` at the Takeout files.
fn use_takeout(dir: &Path) {
    let config = std::fs::read_to_string(dir.join("cutover.toml")).unwrap();
    let start = config.find("[contacts_calendars]").unwrap();
    let rest = &config[start..];
    let kept: String = rest
        .lines()
        .filter(|l| !l.starts_with("source =") && !l.starts_with("url ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let kept = kept.replacen(
        "[contacts_calendars]\n",
        "[contacts_calendars]\nsource = \"files\"\npath = \"../takeout/{email}\"\n",
        1,
    );
    std::fs::write(dir.join("cutover.toml"), format!("{}{kept}", &config[..start])).unwrap();
}

/// The failed items the state DB recorded: (UID or key, reason).
fn failures(dir: &Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT source_key, COALESCE(reason, '') FROM pim_items WHERE state = 'failed' ORDER BY source_key")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_takeout_export_goes_to_graph_and_dav_once_then_only_the_edits() {
    let dav = Radicale::start(&[("alice", ALICE_PW), ("bob", BOB_PW)]);
    let emu_server = Emulator::new().client_secret(SECRET).seed(11).quiet().start();
    let emu = emu_server.base_url.clone();
    let root = tempfile::tempdir().unwrap();
    write_takeout(root.path(), 0);
    let dir = setup(root.path(), "graph", &emu, &dav, "", ("", ""));
    use_takeout(&dir);

    // Events: Google's 5 UIDs + 12 team events + 2 travel; the broken
    // event fails alone. Contacts: 2 + 12; the empty card fails alone;
    // Friends.vcf is a subset of All Contacts and is not read. The user
    // ends partial: two items were not copied.
    assert_eq!(pim_counts(&migrate_ending(&dir, &[], "partial")), [14, 1, 0, 19, 1, 0]);
    let first = pim(&emu);
    let names = contact_names(&first);
    assert_eq!(names.len(), 14, "every contact once: {names:?}");
    assert!(names.contains(&"Anna Schmidt".to_owned()) && names.contains(&"Person 12".to_owned()));
    let subjects_first = subjects(&first);
    for n in 1..=12 {
        let want = format!("Team {n}");
        let copies = subjects_first.iter().filter(|s| **s == want).count();
        assert_eq!(copies, 1, "{want}: {subjects_first:?}");
    }
    // The New York series crosses the US DST switch (9 March) at 9:00 wall
    // clock: 14:00 UTC before, 13:00 UTC after.
    let series = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "Team 1")
        .unwrap();
    let starts: Vec<String> = series["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(starts.len(), 6, "{series:#}");
    assert!(
        starts[0].starts_with("2025-03-03T14:00") && starts[1].starts_with("2025-03-10T13:00"),
        "{starts:?}"
    );
    let stats = get(&format!("{emu}/_emulator/stats"));
    assert_eq!(stats["total"]["invitations_sent"].as_u64().unwrap_or(0), 0, "{stats:#}");
    let failed = failures(&dir);
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|(k, why)| k.contains("no-start@example.test") && why.contains("DTSTART")),
        "the broken event fails with its reason: {failed:?}"
    );
    assert!(
        failed.iter().any(|(_, why)| why.contains("nothing to copy")),
        "the empty card fails with its reason: {failed:?}"
    );

    // The report names each bad item and why, for the admin to fix.
    let out = cutover(&dir, &["report", "--format", "csv", "--output", "report.csv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let items = std::fs::read_to_string(dir.join("report.contacts_events.csv")).unwrap();
    assert!(
        items.contains("no-start@example.test") && items.contains("DTSTART"),
        "{items}"
    );
    assert!(items.contains("nothing to copy"), "{items}");

    // verify reads the same files: every item in place, the bad ones
    // listed as failed at copy time.
    let out = cutover(&dir, &["verify", "--users", "users.csv"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("FAILED AT COPY TIME"), "{text}");

    // A rerun of the same files writes nothing.
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);
    assert_eq!(pim(&emu), first);

    // Ten events and ten contacts edited in a new export: exactly those.
    write_takeout(root.path(), 10);
    assert_eq!(pim_counts(&migrate(&dir)), [10, 0, 0, 10, 0, 0]);
    let third = pim(&emu);
    assert_eq!(contact_names(&third), names, "contacts updated in place, none added");
    let subjects_third = subjects(&third);
    assert_eq!(subjects_third.len(), subjects_first.len(), "{subjects_third:?}");
    assert!(subjects_third.contains(&"Team 10 (moved)".to_owned()));
    assert!(subjects_third.contains(&"Team 11".to_owned()));
    let phones: Vec<String> = third["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["displayName"] == "Person 3")
        .map(|c| c["mobilePhone"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(phones, ["+1 555 0103 99"]);
    let stats = get(&format!("{emu}/_emulator/stats"));
    assert_eq!(stats["total"]["invitations_sent"].as_u64().unwrap_or(0), 0);
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);

    // A calendar that cannot be read (too large) fails alone: the
    // calendars after it and the contacts are still synced, and the user
    // says why it is partial.
    let huge = root.path().join(format!("takeout/{EMAIL}/Takeout/Calendar/Huge.ics"));
    write_takeout(root.path(), 11);
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 * 1024 * 1024)
        .unwrap();
    let out = cutover(&dir, &["migrate", "--users", "users.csv", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let finished = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "user_finished")
        .unwrap();
    assert_eq!(finished["state"], "partial", "{finished}");
    assert_eq!(pim_counts(&finished["pim"]), [1, 0, 0, 1, 0, 0], "{finished}");
    let why = finished.to_string();
    assert!(why.contains("Huge") && why.contains("split it"), "{finished}");
    std::fs::remove_file(&huge).unwrap();
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);

    // The same export into a DAV account: every item once, each calendar
    // file a calendar (none is the default one on a DAV server either).
    let dir = setup(
        root.path(),
        "dav",
        &emu,
        &dav,
        &format!("target = \"dav\"\ntarget_url = \"{}\"\n", dav.url()),
        (",TargetUserName,TargetPassword", &format!(",bob,{BOB_PW}")),
    );
    use_takeout(&dir);
    assert_eq!(pim_counts(&migrate_ending(&dir, &[], "partial")), [14, 1, 0, 19, 1, 0]);
    let out = cutover(&dir, &["verify", "--users", "users.csv"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);
    write_takeout(root.path(), 3);
    // An export with only the first three edited: 4..=11 went back to
    // their original text, and only those are written.
    assert_eq!(pim_counts(&migrate(&dir)), [8, 0, 0, 8, 0, 0]);

    // Deletions: kept by default, mirrored on request (those kept by an
    // earlier run too), and never more than max_delete_percent at once.
    drop_cards(root.path(), &[12]);
    assert_eq!(pim_counts(&migrate(&dir)), [0, 0, 1, 0, 0, 0]);
    assert_eq!(pim_counts(&migrate_with(&dir, &["--mirror-deletions"])), [0; 6]);
    let (_, contacts) = figures(&dir);
    assert_eq!(
        contacts["deleted"], 1,
        "the copy kept last run is deleted now: {contacts}"
    );
    drop_cards(root.path(), &[1, 2, 3, 4, 5]);
    let out = cutover(&dir, &["migrate", "--users", "users.csv", "--mirror-deletions"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_delete_percent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, contacts) = figures(&dir);
    assert_eq!(
        contacts["deleted"], 1,
        "5 of 13 copies is over 10%: none deleted: {contacts}"
    );
    migrate_with(&dir, &["--mirror-deletions", "--force-deletions"]);
    let (_, contacts) = figures(&dir);
    assert_eq!(contacts["deleted"], 6, "{contacts}");
    assert_eq!(contacts["written"], 8, "{contacts}");
}

/// Removes the generated cards `numbers` ("Person N") from the export's
/// All Contacts.vcf.
fn drop_cards(root: &Path, numbers: &[u32]) {
    let path = root.join(format!(
        "takeout/{EMAIL}/Takeout/Contacts/All Contacts/All Contacts.vcf"
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text
        .split("BEGIN:VCARD")
        .filter(|card| !card.is_empty())
        .filter(|card| !numbers.iter().any(|n| card.contains(&format!("FN:Person {n}\r\n"))))
        .map(|card| format!("BEGIN:VCARD{card}"))
        .collect();
    assert_eq!(
        text.matches("BEGIN:VCARD").count() - kept.matches("BEGIN:VCARD").count(),
        numbers.len()
    );
    std::fs::write(&path, kept).unwrap();
}

/// The acceptance data set, as (collection name, items): three calendars
/// (a weekly series crossing Europe's DST switch with a cancelled and a
/// moved occurrence, a meeting with attendees, a three-day all-day trip,
/// twelve events in five time zones, one of them a weekly series crossing
/// the US DST switch) and two address books of twelve cards and one with
/// five addresses. With `edited`, events team-1..=10 and cards 1..=10
/// carry new text.
type Collections = Vec<(&'static str, Vec<String>)>;

fn acceptance_data(edited: bool) -> (Collections, Collections) {
    let team = |n: u32| {
        let summary = if edited && n <= 10 {
            format!("Team {n} (moved)")
        } else {
            format!("Team {n}")
        };
        team_event(n, &summary)
    };
    let work: Vec<String> = [SERIES.to_owned(), MEETING.to_owned()]
        .into_iter()
        .chain((1..=6).map(team))
        .collect();
    let home: Vec<String> = [all_day("Easter trip"), new_york("Call with NY")]
        .into_iter()
        .chain((7..=9).map(team))
        .collect();
    let travel: Vec<String> = [TOKYO.to_owned()].into_iter().chain((10..=12).map(team)).collect();
    let person = |n: u32| {
        let mail = if edited && n <= 10 {
            format!("person{n}@new.example.com")
        } else {
            format!("person{n}@example.com")
        };
        card(&format!("person-{n}"), &format!("Person {n}"), &[mail.as_str()])
    };
    let friends: Vec<String> = (1..=6).map(person).collect();
    let colleagues: Vec<String> = [card("anna", "Anna", &FIVE_MAILS)]
        .into_iter()
        .chain((7..=12).map(person))
        .collect();
    (
        vec![("Work", work), ("Home", home), ("Travel", travel)],
        vec![("Friends", friends), ("Colleagues", colleagues)],
    )
}

/// Puts the data set into `user`'s Radicale account, one object each.
fn put_acceptance_data(dav: &Radicale, user: &str, edited: bool, create: bool) {
    let (calendars, books) = acceptance_data(edited);
    for (name, events) in calendars {
        let slug = name.to_lowercase();
        if create {
            dav.mkcalendar(user, &slug, name, &["VEVENT"]);
        }
        for (i, event) in events.iter().enumerate() {
            dav.put(user, &format!("/{user}/{slug}/e{i}.ics"), &calendar(event));
        }
    }
    for (name, cards) in books {
        let slug = name.to_lowercase();
        if create {
            dav.mkaddressbook(user, &slug, name);
        }
        for (i, card) in cards.iter().enumerate() {
            dav.put(user, &format!("/{user}/{slug}/c{i}.vcf"), card);
        }
    }
}

/// Writes the data set as a Google Takeout export: the first calendar
/// named after the user (Takeout's primary), each address book a label.
fn write_acceptance_takeout(root: &Path, edited: bool) {
    let base = root.join(format!("export/{EMAIL}/Takeout"));
    let (calendars, books) = acceptance_data(edited);
    std::fs::create_dir_all(base.join("Calendar")).unwrap();
    for (i, (name, events)) in calendars.iter().enumerate() {
        let file = if i == 0 { EMAIL } else { name };
        std::fs::write(base.join(format!("Calendar/{file}.ics")), calendar(&events.concat())).unwrap();
    }
    for (name, cards) in &books {
        std::fs::create_dir_all(base.join(format!("Contacts/{name}"))).unwrap();
        std::fs::write(base.join(format!("Contacts/{name}/{name}.vcf")), cards.concat()).unwrap();
    }
}

fn verify_passes(dir: &Path) {
    let out = cutover(dir, &["verify", "--users", "users.csv"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_same_calendars_from_radicale_and_from_takeout_land_once_in_graph_and_in_dav() {
    let dav = Radicale::start(&[("alice", ALICE_PW), ("bob", BOB_PW), ("carol", BOB_PW)]);
    put_acceptance_data(&dav, "alice", false, true);
    let root = tempfile::tempdir().unwrap();
    write_acceptance_takeout(root.path(), false);
    let takeout = |dir: &Path| {
        let config = std::fs::read_to_string(dir.join("cutover.toml")).unwrap();
        let config = config
            .replace("source = \"dav\"\n", "source = \"files\"\n")
            .lines()
            .filter(|l| !l.starts_with("url ="))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            dir.join("cutover.toml"),
            config.replace(
                "source = \"files\"",
                "source = \"files\"\npath = \"../export/{email}/Takeout\"",
            ),
        )
        .unwrap();
    };
    let dav_target = |user: &str| {
        (
            format!("target = \"dav\"\ntarget_url = \"{}\"\n", dav.url()),
            format!(",{user},{BOB_PW}"),
        )
    };
    let emulators: Vec<_> = (0..2)
        .map(|seed| Emulator::new().client_secret(SECRET).seed(seed).quiet().start())
        .collect();

    // Each source into each target: 17 events and 13 contacts, once.
    let (to_bob, bob_row) = dav_target("bob");
    let (to_carol, carol_row) = dav_target("carol");
    let runs = [
        (
            "radicale-graph",
            &emulators[0].base_url,
            String::new(),
            String::new(),
            false,
        ),
        ("radicale-dav", &emulators[0].base_url, to_bob, bob_row, false),
        (
            "takeout-graph",
            &emulators[1].base_url,
            String::new(),
            String::new(),
            true,
        ),
        ("takeout-dav", &emulators[1].base_url, to_carol, carol_row, true),
    ];
    let mut dirs = Vec::new();
    for (name, emu, target, row, files) in &runs {
        let header = if row.is_empty() {
            ""
        } else {
            ",TargetUserName,TargetPassword"
        };
        let dir = setup(root.path(), name, emu, &dav, target, (header, row));
        if *files {
            takeout(&dir);
        }
        assert_eq!(pim_counts(&migrate(&dir)), [13, 0, 0, 17, 0, 0], "{name}");
        verify_passes(&dir);
        assert_eq!(
            pim_counts(&migrate(&dir)),
            [0; 6],
            "{name}: a second run writes nothing"
        );
        dirs.push(dir);
    }
    for emu in &emulators {
        let stats = get(&format!("{}/_emulator/stats", emu.base_url));
        assert_eq!(stats["total"]["invitations_sent"].as_u64().unwrap_or(0), 0, "{stats:#}");
    }

    // Ten events and ten contacts edited on each source: exactly those.
    put_acceptance_data(&dav, "alice", true, false);
    write_acceptance_takeout(root.path(), true);
    for ((name, ..), dir) in runs.iter().zip(&dirs) {
        assert_eq!(pim_counts(&migrate(dir)), [10, 0, 0, 10, 0, 0], "{name}");
        verify_passes(dir);
        assert_eq!(pim_counts(&migrate(dir)), [0; 6], "{name}");
    }
    for emu in &emulators {
        let mailbox = pim(&emu.base_url);
        let subjects = subjects(&mailbox);
        assert_eq!(subjects.len(), 17, "{subjects:?}");
        assert!(subjects.contains(&"Team 10 (moved)".to_owned()) && subjects.contains(&"Team 11".to_owned()));
        assert_eq!(contact_names(&mailbox).len(), 13);
        let stats = get(&format!("{}/_emulator/stats", emu.base_url));
        assert_eq!(stats["total"]["invitations_sent"].as_u64().unwrap_or(0), 0, "{stats:#}");
        assert_eq!(
            stats["total"]["cancellations_sent"].as_u64().unwrap_or(0),
            0,
            "{stats:#}"
        );
    }
}

/// One POST of the emulator's admin API.
fn post(url: &str, body: Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reply = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
        assert!(reply.status().is_success(), "POST {url}: {}", reply.status());
    });
}

/// A mailbox's contacts and events are written several at once (as many as
/// the mailbox may have requests in flight), not one round trip after the
/// other: with Exchange's real latency, one at a time leaves half the
/// request budget unused. Every item still lands once.
#[test]
fn a_mailboxs_contacts_and_events_are_written_several_at_once_and_each_once() {
    let dav = Radicale::start(&[("alice", ALICE_PW)]);
    let calendar_href = dav.mkcalendar("alice", "work", "Work", &["VEVENT"]);
    let book_href = dav.mkaddressbook("alice", "friends", "Friends");
    const EACH: usize = 60;
    let events: Vec<(String, String)> = (0..EACH)
        .map(|n| {
            (
                format!("e{n}.ics"),
                support::radicale::event(&format!("e{n}"), &format!("Event {n:03}")),
            )
        })
        .collect();
    let cards: Vec<(String, String)> = (0..EACH)
        .map(|n| {
            (
                format!("c{n}.vcf"),
                support::radicale::contact(&format!("c{n}"), &format!("Person {n:03}")),
            )
        })
        .collect();
    dav.store_directly(&calendar_href, &events);
    dav.store_directly(&book_href, &cards);
    let emu_server = Emulator::new().client_secret(SECRET).seed(11).quiet().start();
    let emu = emu_server.base_url.clone();
    // Round trips long enough that requests of one mailbox overlap only
    // when cutover sends them side by side.
    post(
        &format!("{emu}/_emulator/faults"),
        serde_json::json!({"latency_ms": [20, 40]}),
    );
    let root = tempfile::tempdir().unwrap();
    let dir = setup(root.path(), "graph", &emu, &dav, "", ("", ""));

    let counts = pim_counts(&migrate(&dir));
    assert_eq!(counts, [EACH as u64, 0, 0, EACH as u64, 0, 0]);
    let stats = get(&format!("{emu}/_emulator/stats"));
    let most = stats["mailboxes"][EMAIL]["max_concurrent"].as_u64().unwrap_or(0);
    assert!(
        (2..=4).contains(&most),
        "requests of the mailbox in flight at once: {most}, expected 2 to 4 (its limit): {stats:#}"
    );
    let written = pim(&emu);
    let mut names = contact_names(&written);
    names.dedup();
    assert_eq!(names.len(), EACH, "every contact once: {names:?}");
    assert_eq!(contact_names(&written).len(), EACH);
    let mut titles = subjects(&written);
    assert_eq!(titles.len(), EACH, "{titles:?}");
    titles.dedup();
    assert_eq!(titles.len(), EACH, "every event once: {titles:?}");
    verify_passes(&dir);
    // A second run finds nothing to write.
    assert_eq!(pim_counts(&migrate(&dir)), [0; 6]);
}
