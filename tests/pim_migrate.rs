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
    let mut args = vec!["migrate", "--users", "users.csv", "--json"];
    args.extend_from_slice(extra);
    let out = cutover(dir, &args);
    assert!(
        out.status.success(),
        "migrate: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "user_finished")
        .map(|e| {
            assert_eq!(e["state"], "done", "{e}");
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
    // The final pass mirrors a deletion on the source.
    dav.delete("alice", "/alice/colleagues/emil.vcf");
    assert_eq!(pim_counts(&migrate_with(&dir, &["--mirror-deletions"])), [0; 6]);
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
