//! `cutover check` with `[contacts_calendars]`, end to end: the real binary
//! against a real Radicale (and the Graph emulator as the mail target)
//! counts each user's calendars, address books, events and contacts from
//! the listings, names what it leaves out, and says a user is not ready
//! when the contacts-and-calendars source refuses the login or the user's
//! files are missing, before any migrate copies mail for them. Nothing is
//! written anywhere.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use support::emulator::{CLIENT, Emulator, TENANT};
use support::radicale::{Radicale, contact, event, todo};

const SECRET: &str = "graph-s3cret-value";
const SECRET_ENV: &str = "CUTOVER_TEST_GRAPH_SECRET";
const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const ALICE_PW: &str = "alice-Pw-4711";
const BOB_PW: &str = "bob-Pw-0815";
const WRONG_PW: &str = "not-Bobs-Pw-1234";

/// A run directory: an empty Takeout mbox per user as the mail source, the
/// Graph emulator as the mail target, `pim` as `[contacts_calendars]`.
/// `users` are (email, login, password).
fn setup(root: &Path, name: &str, emu: &str, pim: &str, users: &[(&str, &str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("mail")).unwrap();
    let mut csv = String::from("EmailAddress,UserName,Password\r\n");
    for (email, login, password) in users {
        std::fs::write(dir.join(format!("mail/{email}.mbox")), "").unwrap();
        csv.push_str(&format!("{email},{login},{password}\r\n"));
    }
    let config = format!(
        "[source]\nkind = \"mbox\"\npath = \"mail/{{email}}.mbox\"\n\n\
         [target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_env = \"{SECRET_ENV}\"\nendpoint = \"{emu}\"\nauthority = \"{emu}\"\ntimeout_seconds = 20\n\n\
         [state]\npath = \"state.db\"\n\n\
         [contacts_calendars]\n{pim}timeout_seconds = 10\n",
    );
    std::fs::write(dir.join("cutover.toml"), config).unwrap();
    std::fs::write(dir.join("users.csv"), csv).unwrap();
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

/// `check --json`: the exit code and the report.
fn check_json(dir: &Path) -> (Option<i32>, Value) {
    let out = cutover(dir, &["check", "--users", "users.csv", "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn user<'a>(report: &'a Value, email: &str) -> &'a Value {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {report:#}"))
}

/// What the emulator's mailbox holds of contacts and events.
fn target_pim(emu: &str, email: &str) -> (usize, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v: Value = rt.block_on(async {
        reqwest::get(format!(
            "{emu}/_emulator/mailboxes/{email}/pim?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    });
    let len = |k: &str| v[k].as_array().map_or(0, Vec::len);
    (len("events"), len("contacts"))
}

/// Alice: two calendars with three events, an address book with two
/// contacts, and a task list (which a migrate leaves out).
fn fill(dav: &Radicale) {
    dav.mkcalendar("alice", "work", "Work", &["VEVENT"]);
    dav.mkcalendar("alice", "home", "Home", &["VEVENT"]);
    dav.mkcalendar("alice", "chores", "Chores", &["VTODO"]);
    dav.mkaddressbook("alice", "friends", "Friends");
    dav.put("alice", "/alice/work/standup.ics", &event("standup", "Standup"));
    dav.put("alice", "/alice/work/review.ics", &event("review", "Review"));
    dav.put("alice", "/alice/home/dentist.ics", &event("dentist", "Dentist"));
    dav.put("alice", "/alice/chores/bins.ics", &todo("bins", "Take out the bins"));
    dav.put("alice", "/alice/friends/anna.vcf", &contact("anna", "Anna"));
    dav.put("alice", "/alice/friends/ben.vcf", &contact("ben", "Ben"));
}

#[test]
fn check_counts_calendars_and_contacts_and_fails_a_user_the_dav_server_refuses() {
    let dav = Radicale::start(&[("alice", ALICE_PW), ("bob", BOB_PW)]);
    fill(&dav);
    let emu_server = Emulator::new().client_secret(SECRET).seed(3).quiet().start();
    let emu = emu_server.base_url.clone();
    let root = tempfile::tempdir().unwrap();
    let pim = format!("source = \"dav\"\nurl = \"{}\"\n", dav.url());
    let dir = setup(root.path(), "dav", &emu, &pim, &[(ALICE, "alice", ALICE_PW)]);

    let (code, report) = check_json(&dir);
    assert_eq!(code, Some(0), "{report:#}");
    let alice = user(&report, ALICE);
    assert_eq!(alice["ready"], true, "{alice:#}");
    let p = &alice["pim"];
    assert_eq!(
        [&p["calendars"], &p["address_books"], &p["events"], &p["contacts"]].map(|v| v.as_u64()),
        [Some(2), Some(1), Some(3), Some(2)],
        "{p:#}"
    );
    assert_eq!(p["skipped"][0]["name"], "Chores", "{p:#}");
    assert!(
        p["target"].as_str().unwrap_or("").contains("default calendar found"),
        "{p:#}"
    );
    assert_eq!(report["totals"]["pim"]["events"], 3, "{report:#}");
    assert_eq!(report["totals"]["pim"]["contacts"], 2, "{report:#}");
    // Listings only: no item was read.
    for item in [
        "/alice/work/standup.ics",
        "/alice/work/review.ics",
        "/alice/home/dentist.ics",
        "/alice/friends/anna.vcf",
        "/alice/friends/ben.vcf",
    ] {
        assert_eq!(dav.requests("GET", item), 0, "{item} was fetched");
    }

    let out = cutover(&dir, &["check", "--users", "users.csv"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table.contains(&format!(
            "  contacts and calendars: CalDAV/CardDAV http://127.0.0.1:{}, 3 events in 2 calendars, 2 contacts in 1 address book\n",
            dav.port()
        )),
        "{table}"
    );
    assert!(table.contains("    calendar Work               2\n"), "{table}");
    assert!(table.contains("    address book Friends        2\n"), "{table}");
    assert!(table.contains("    Chores (not copied: "), "{table}");
    assert!(
        table.contains("1 ready, 0 will fail; 0 messages, 0 B in total, 0 too large; 3 events in 2 calendars, 2 contacts in 1 address book"),
        "{table}"
    );
    assert_eq!(target_pim(&emu, ALICE), (0, 0), "check wrote to the target");

    // Bob's row carries a password the DAV server refuses: not ready, and
    // the problem names the contacts-and-calendars source.
    let dir = setup(
        root.path(),
        "refused",
        &emu,
        &pim,
        &[(ALICE, "alice", ALICE_PW), (BOB, "bob", WRONG_PW)],
    );
    let (code, report) = check_json(&dir);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(user(&report, ALICE)["ready"], true, "{report:#}");
    let bob = user(&report, BOB);
    assert_eq!(bob["ready"], false, "{bob:#}");
    assert!(bob.get("pim").is_none(), "{bob:#}");
    let problems = bob["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "contacts and calendars source (CalDAV/CardDAV http://127.0.0.1:{})",
            dav.port()
        )),
        "{problems}"
    );
    assert_eq!(report["totals"]["failing"], 1, "{report:#}");
    let out = cutover(&dir, &["check", "--users", "users.csv"]);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.contains(&format!("{BOB}: WILL FAIL\n  problem: contacts and calendars source")),
        "{table}"
    );
    let all = format!("{table}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !all.contains(WRONG_PW) && !all.contains(ALICE_PW),
        "a password in the output:\n{all}"
    );
}

#[test]
fn check_counts_a_users_files_and_names_the_missing_folder() {
    let emu_server = Emulator::new().client_secret(SECRET).seed(5).quiet().start();
    let root = tempfile::tempdir().unwrap();
    let pim = "source = \"files\"\npath = \"pim/{email}\"\n";
    let dir = setup(
        root.path(),
        "files",
        &emu_server.base_url,
        pim,
        &[(ALICE, "alice", ALICE_PW), (BOB, "bob", BOB_PW)],
    );
    let alice = dir.join("pim").join(ALICE);
    std::fs::create_dir_all(&alice).unwrap();
    // One calendar file with two events, as a calendar export has them.
    let review = event("review", "Review");
    let review = &review[review.find("BEGIN:VEVENT").unwrap()..];
    let calendar = event("standup", "Standup").replace("END:VCALENDAR\r\n", review);
    std::fs::write(alice.join("Work.ics"), calendar).unwrap();
    std::fs::write(
        alice.join("Friends.vcf"),
        contact("anna", "Anna") + &contact("ben", "Ben"),
    )
    .unwrap();

    let (code, report) = check_json(&dir);
    assert_eq!(code, Some(1), "{report:#}");
    let a = user(&report, ALICE);
    assert_eq!(a["ready"], true, "{a:#}");
    assert_eq!(
        [
            &a["pim"]["calendars"],
            &a["pim"]["address_books"],
            &a["pim"]["events"],
            &a["pim"]["contacts"]
        ]
        .map(|v| v.as_u64()),
        [Some(1), Some(1), Some(2), Some(2)],
        "{a:#}"
    );
    let b = user(&report, BOB);
    assert_eq!(b["ready"], false, "{b:#}");
    let problems = b["problems"].to_string();
    let missing = format!("pim/{BOB}");
    assert!(
        problems.contains("contacts and calendars source") && problems.contains(&missing),
        "the problem names the source and the missing folder: {problems}"
    );
    let out = cutover(&dir, &["check", "--users", "users.csv"]);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert!(
        table.contains(&format!("{BOB}: WILL FAIL\n  problem: contacts and calendars source")),
        "{table}"
    );
    assert!(table.contains("  contacts and calendars: .ics/.vcf files "), "{table}");
}
