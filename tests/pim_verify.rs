//! `cutover verify` on contacts and calendars, end to end: a real Radicale
//! as the source (hand-written items and the corpus of real exports in
//! tests/data/pim), `cutover migrate` into the Graph emulator and into a
//! second Radicale account, then `cutover verify`. A faithful copy passes
//! (exit 0); a deleted event, a contact whose e-mail address was changed
//! in the target and a second copy of an event put there fail it (exit 1),
//! each named with its collection, UID and subject or name.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use cutover::transform::contact::split_vcards;
use cutover::transform::event::split_calendar;
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
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:Bob@Example.com\r\n\
ATTENDEE;CN=Carol;ROLE=OPT-PARTICIPANT:mailto:carol@example.com\r\nEND:VEVENT\r\n";

const TRIP: &str = "BEGIN:VEVENT\r\nUID:trip-1\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;VALUE=DATE:20250414\r\n\
DTEND;VALUE=DATE:20250417\r\nSUMMARY:Easter trip\r\nEND:VEVENT\r\n";

const NEW_YORK: &str = "BEGIN:VEVENT\r\nUID:ny-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=America/New_York:20250610T090000\r\nDTEND;TZID=America/New_York:20250610T100000\r\n\
SUMMARY:Call with NY\r\nEND:VEVENT\r\n";

const TOKYO: &str = "BEGIN:VEVENT\r\nUID:tokyo-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Asia/Tokyo:20250701T180000\r\nDTEND;TZID=Asia/Tokyo:20250701T200000\r\n\
SUMMARY:Dinner in Tokyo\r\nEND:VEVENT\r\n";

/// An event Exchange cannot store (year 9999): `migrate` records it as
/// failed, for either target, and verify reports it as such, not missing.
const FAR_FUTURE: &str = "BEGIN:VEVENT\r\nUID:far-future-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART:99991231T100000Z\r\nDTEND:99991231T110000Z\r\nSUMMARY:Far future\r\nEND:VEVENT\r\n";

fn card(uid: &str, name: &str, emails: &[&str]) -> String {
    let emails: String = emails.iter().map(|e| format!("EMAIL;TYPE=INTERNET:{e}\r\n")).collect();
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n{emails}END:VCARD\r\n")
}

fn corpus(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pim").join(name))
        .unwrap_or_else(|e| panic!("tests/data/pim/{name}: {e}"))
}

/// Alice's calendars and address books: hand-written items (a weekly
/// series across the DST switch with a cancelled and a moved occurrence, a
/// meeting, an all-day trip, events in New York and Tokyo, a contact with
/// five addresses) and every item of the Outlook, Google and Apple exports
/// of tests/data/pim, one object per UID as a CalDAV/CardDAV server stores
/// them; and one event no target can take.
fn fill(dav: &Radicale) {
    dav.mkcalendar("alice", "work", "Work", &["VEVENT"]);
    dav.mkcalendar("alice", "home", "Home", &["VEVENT"]);
    dav.mkcalendar("alice", "exports", "Exports", &["VEVENT"]);
    dav.mkaddressbook("alice", "friends", "Friends");
    dav.mkaddressbook("alice", "cards", "Cards");
    dav.put("alice", "/alice/work/weekly-1.ics", &calendar(SERIES));
    dav.put("alice", "/alice/work/meeting-1.ics", &calendar(MEETING));
    dav.put("alice", "/alice/home/trip-1.ics", &calendar(TRIP));
    dav.put("alice", "/alice/home/ny-1.ics", &calendar(NEW_YORK));
    dav.put("alice", "/alice/home/tokyo-1.ics", &calendar(TOKYO));
    dav.put("alice", "/alice/home/far-future-1.ics", &calendar(FAR_FUTURE));
    let five = [
        "a1@example.com",
        "a2@example.com",
        "a3@example.com",
        "a4@example.com",
        "a5@example.com",
    ];
    dav.put("alice", "/alice/friends/anna.vcf", &card("anna", "Anna", &five));
    dav.put(
        "alice",
        "/alice/friends/ben.vcf",
        &card("ben", "Ben", &["ben@example.com"]),
    );
    for file in ["outlook.ics", "google.ics", "apple.ics"] {
        let (objects, _) = split_calendar(&corpus(file));
        for (i, o) in objects.iter().enumerate() {
            dav.put("alice", &format!("/alice/exports/{file}-{i}.ics"), &o.raw);
        }
    }
    for file in ["outlook.vcf", "google.vcf", "apple.vcf"] {
        let (objects, _) = split_vcards(&corpus(file));
        for (i, o) in objects.iter().enumerate() {
            dav.put("alice", &format!("/alice/cards/{file}-{i}.vcf"), &o.raw);
        }
    }
}

/// A run directory: an empty mbox as the mail source, the Graph emulator
/// as the mail target, Radicale for contacts and calendars (`pim_target`
/// adds to `[contacts_calendars]`, `csv_extra` to the users file).
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

/// `migrate`: exit 1, the user partial, for the one event it cannot copy.
fn migrate(dir: &Path) {
    let out = cutover(dir, &["migrate", "--users", "users.csv"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "migrate: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `verify` as text and as JSON; its exit code, the text and the user's
/// `pim` part.
fn verify(dir: &Path) -> (Option<i32>, String, Value) {
    let text = cutover(dir, &["verify", "--users", "users.csv"]);
    let json = cutover(dir, &["verify", "--users", "users.csv", "--json"]);
    assert_eq!(text.status.code(), json.status.code());
    let report: Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", String::from_utf8_lossy(&json.stderr)));
    (
        text.status.code(),
        String::from_utf8_lossy(&text.stdout).into_owned(),
        report["users"][0]["pim"].clone(),
    )
}

/// The findings of one kind, as (kind, collection, uid, name).
fn findings(pim: &Value, finding: &str) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = pim["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {pim:#}"))
        .iter()
        .filter(|f| f["finding"] == finding)
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("kind"), s("collection"), s("uid"), s("name"))
        })
        .collect();
    out.sort();
    out
}

fn tuple(kind: &str, collection: &str, uid: &str, name: &str) -> (String, String, String, String) {
    (kind.into(), collection.into(), uid.into(), name.into())
}

/// A faithful copy: exit 0, every collection compared, nothing found but
/// the event that failed at copy time.
fn assert_verified(dir: &Path) {
    let (code, text, pim) = verify(dir);
    assert_eq!(code, Some(0), "{text}\n{pim:#}");
    assert_failed_at_copy(&pim);
    assert_eq!(pim["findings"].as_array().unwrap().len(), 1, "{pim:#}");
    assert_eq!(pim["collections"].as_array().unwrap().len(), 5, "{pim:#}");
    let matching: u64 = pim["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["matching"].as_u64().unwrap())
        .sum();
    let source: u64 = pim["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source_items"].as_u64().unwrap())
        .sum();
    assert_eq!(matching + 1, source, "{pim:#}");
    assert!(source >= 15, "the corpus items are compared too: {pim:#}");
    assert!(
        text.contains("contacts and calendars: 0 missing, 0 differing, 0 duplicated, 1 failed at copy time"),
        "{text}"
    );
    assert!(
        text.contains("alice@example.test: FAILED AT COPY TIME event in Home: far-future-1.ics; failed at copy time ("),
        "{text}"
    );
}

fn assert_failed_at_copy(pim: &Value) {
    let failed: Vec<&Value> = pim["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["finding"] == "failed_at_copy")
        .collect();
    assert_eq!(failed.len(), 1, "{pim:#}");
    assert_eq!(
        (&failed[0]["collection"], &failed[0]["item"]),
        (&json!("Home"), &json!("far-future-1.ics")),
        "{pim:#}"
    );
    assert!(
        failed[0]["status"].as_str().unwrap().contains("9999"),
        "the reason recorded when it was copied: {pim:#}"
    );
}

/// The three changes made in each target, as verify must name them.
fn assert_found_changes(dir: &Path) {
    let (code, text, pim) = verify(dir);
    assert_eq!(code, Some(1), "{text}\n{pim:#}");
    assert_eq!(
        findings(&pim, "missing"),
        [tuple("event", "Home", "tokyo-1", "Dinner in Tokyo")],
        "{pim:#}"
    );
    assert_eq!(
        findings(&pim, "differs"),
        [tuple("contact", "Friends", "ben", "Ben")],
        "{pim:#}"
    );
    assert_eq!(
        findings(&pim, "duplicate"),
        [tuple("event", "Home", "ny-1", "Call with NY")],
        "{pim:#}"
    );
    assert_eq!(findings(&pim, "extra"), [], "{pim:#}");
    assert_failed_at_copy(&pim);
    let ben = pim["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["finding"] == "differs")
        .unwrap();
    assert_eq!(
        ben["differences"],
        json!([{"field": "emails", "only_in_source": ["ben@example.com"], "only_in_target": ["ben@changed.example"]}]),
        "{pim:#}"
    );
    for line in [
        "alice@example.test: MISSING event in Home: UID tokyo-1 \"Dinner in Tokyo\"",
        "alice@example.test: DIFFERS contact in Friends: UID ben \"Ben\": emails: only in the source ben@example.com, only in the target ben@changed.example",
        "alice@example.test: DUPLICATE event in Home: UID ny-1 \"Call with NY\"",
        "contacts and calendars: 1 missing, 1 differing, 1 duplicated",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

/// A token for the emulator's Graph API, as any admin tool gets one.
fn graph_token(http: &reqwest::Client, emu: &str) -> String {
    let rt = runtime();
    rt.block_on(async {
        let v: Value = http
            .post(format!("{emu}/{TENANT}/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"].as_str().expect("a token").to_owned()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One Graph request with the token; the JSON answer (`Null` when empty).
fn graph(http: &reqwest::Client, token: &str, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    runtime().block_on(async {
        let mut req = http.request(method.clone(), &url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    })
}

/// Changes the Graph mailbox behind cutover's back: deletes "Dinner in
/// Tokyo", gives Ben another address, adds a second "Call with NY".
fn alter_graph(emu: &str) {
    let http = reqwest::Client::new();
    let token = graph_token(&http, emu);
    let users = format!("{emu}/v1.0/users/{EMAIL}");
    let get = |url: String| graph(&http, &token, reqwest::Method::GET, url, None);
    let calendars = get(format!("{users}/calendars"));
    let mut home = None;
    let mut tokyo = None;
    for c in calendars["value"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let events = get(format!("{users}/calendars/{id}/events?$select=subject"));
        for e in events["value"].as_array().unwrap() {
            match e["subject"].as_str() {
                Some("Dinner in Tokyo") => tokyo = Some(e["id"].as_str().unwrap().to_owned()),
                Some("Call with NY") => home = Some(id.to_owned()),
                _ => {}
            }
        }
    }
    let (home, tokyo) = (
        home.expect("Call with NY copied"),
        tokyo.expect("Dinner in Tokyo copied"),
    );
    graph(
        &http,
        &token,
        reqwest::Method::DELETE,
        format!("{users}/events/{tokyo}"),
        None,
    );
    let folders = get(format!("{users}/contactFolders"));
    let mut ben = None;
    for f in folders["value"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        let contacts = get(format!("{users}/contactFolders/{id}/contacts?$select=displayName"));
        for c in contacts["value"].as_array().unwrap() {
            if c["displayName"] == "Ben" {
                ben = Some(c["id"].as_str().unwrap().to_owned());
            }
        }
    }
    graph(
        &http,
        &token,
        reqwest::Method::PATCH,
        format!("{users}/contacts/{}", ben.expect("Ben copied")),
        Some(json!({"emailAddresses": [{"address": "ben@changed.example", "name": "Ben"}]})),
    );
    graph(
        &http,
        &token,
        reqwest::Method::POST,
        format!("{users}/calendars/{home}/events"),
        Some(json!({
            "subject": "Call with NY",
            "start": {"dateTime": "2025-06-10T13:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2025-06-10T14:00:00", "timeZone": "UTC"},
        })),
    );
}

/// The same three changes in Bob's DAV account, straight over HTTP.
fn alter_dav(dav: &Radicale) {
    let stored = dav.stored("bob");
    let find = |needle: &str| {
        stored
            .iter()
            .find(|(_, text)| text.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in bob's account: {stored:#?}"))
            .clone()
    };
    let (tokyo, _) = find("UID:tokyo-1");
    dav.delete("bob", &tokyo);
    let (ben, text) = find("UID:ben");
    dav.put("bob", &ben, &text.replace("ben@example.com", "ben@changed.example"));
    // A second copy (an import made again, with a UID of its own).
    let (ny, _) = find("UID:ny-1");
    let home = &ny[..ny.rfind('/').unwrap() + 1];
    dav.put(
        "bob",
        &format!("{home}ny-copy.ics"),
        &calendar(&NEW_YORK.replace("UID:ny-1", "UID:ny-1-copy")),
    );
}

#[test]
fn verify_compares_contacts_and_events_in_graph_and_dav_targets() {
    let dav = Radicale::start(&[("alice", ALICE_PW), ("bob", BOB_PW)]);
    fill(&dav);
    let emu_server = Emulator::new().client_secret(SECRET).seed(11).quiet().start();
    let emu = emu_server.base_url.clone();
    let root = tempfile::tempdir().unwrap();

    // Into Exchange (the Graph emulator).
    let graph_dir = setup(root.path(), "graph", &emu, &dav, "", ("", ""));
    migrate(&graph_dir);
    assert_verified(&graph_dir);
    alter_graph(&emu);
    assert_found_changes(&graph_dir);

    // Into Bob's account on a DAV server.
    let dav_dir = setup(
        root.path(),
        "dav",
        &emu,
        &dav,
        &format!("target = \"dav\"\ntarget_url = \"{}\"\n", dav.url()),
        (",TargetUserName,TargetPassword", &format!(",bob,{BOB_PW}")),
    );
    migrate(&dav_dir);
    assert_verified(&dav_dir);
    alter_dav(&dav);
    assert_found_changes(&dav_dir);
}
