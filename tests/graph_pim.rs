//! The Graph target's contacts and calendars writer
//! (`src/target/graph/pim.rs`) against the Graph emulator: events, series
//! with a cancelled and a changed occurrence in Europe/Berlin, meetings
//! written without a single invitation or cancellation, a create repeated
//! after a lost answer, contacts with more than Exchange holds and a photo,
//! updates, deletes, refusals and the listing for verify.
//!
//! Each test starts its own emulator and checks the result through its
//! admin API (`/_emulator/mailboxes/{user}/pim`, `/_emulator/stats`).

mod support;
use std::time::Duration;

use serde_json::{Value, json};

use cutover::error::ErrorKind;
use cutover::model::{ItemKind, TargetLogin};
use cutover::secret::Secret;
use cutover::settings::{GraphCredential, GraphSettings, GraphWriteMode};
use cutover::target::graph::GraphTarget;
use cutover::target::pim::{PimContent, PimSession, PimTarget, PimUpload};
use cutover::transform::contact::split_vcards;
use cutover::transform::event::split_calendar_in;

use support::emulator::{CLIENT, Emulator, RunningEmulator, TENANT};
use support::pim::SERIES;

const SECRET: &str = "s3cret-value";
const USER: &str = "alice@contoso.test";

struct Emu {
    _server: RunningEmulator,
    base: String,
    http: reqwest::Client,
}

impl Emu {
    fn start() -> Emu {
        let server = Emulator::new().client_secret(SECRET).seed(5).quiet().start();
        Emu {
            base: server.base_url.clone(),
            _server: server,
            http: reqwest::Client::new(),
        }
    }

    fn target(&self) -> GraphTarget {
        GraphTarget::new(GraphSettings {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            credential: GraphCredential::ClientSecret(Secret::new(SECRET)),
            endpoint: self.base.clone(),
            authority: self.base.clone(),
            write_mode: GraphWriteMode::Auto,
            max_concurrent_requests: 4,
            max_concurrent_requests_per_app: None,
            requests_per_10_minutes: 10_000,
            upload_bytes_per_5_minutes: 157_286_400,
            limits_time_scale: 1.0,
            timeout: Duration::from_secs(30),
        })
        .unwrap()
    }

    async fn session(&self, target: &GraphTarget) -> Box<dyn PimSession> {
        target
            .open(&TargetLogin {
                email: USER.into(),
                login: None,
                secret: None,
                users_file_line: 2,
            })
            .await
            .unwrap()
    }

    async fn admin(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/_emulator/{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Replaces the emulator's fault configuration.
    async fn faults(&self, config: Value) {
        let resp = self
            .http
            .post(format!("{}/_emulator/faults", self.base))
            .json(&config)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "faults: {}", resp.status());
    }

    /// Contacts and events, events with their instances in 2025.
    async fn pim(&self) -> Value {
        self.admin(&format!(
            "mailboxes/{USER}/pim?start=2025-01-01T00:00:00Z&end=2026-01-01T00:00:00Z"
        ))
        .await
    }

    /// (invitations, cancellations) Exchange would have sent for the mailbox.
    async fn notices(&self) -> (u64, u64) {
        let stats = self.admin("stats").await;
        let m = &stats["mailboxes"][USER];
        let count = |name: &str| {
            // One mailbox per emulator: the total must agree with it.
            let total = stats["total"][name].as_u64().unwrap_or(0);
            assert_eq!(m[name].as_u64().unwrap_or(0), total, "{name}: {stats:#}");
            total
        };
        (count("invitations_sent"), count("cancellations_sent"))
    }
}

fn event(ics_body: &str, key: &str) -> PimUpload {
    let text = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{ics_body}END:VCALENDAR\r\n");
    let (objects, problems) = split_calendar_in(&text, "Europe/Berlin");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(objects.len(), 1);
    PimUpload {
        key: key.into(),
        content: PimContent::Event(Box::new(objects.into_iter().next().unwrap())),
    }
}

fn contact(vcard: &str, key: &str) -> PimUpload {
    let (objects, problems) = split_vcards(vcard);
    assert!(problems.is_empty(), "{problems:?}");
    PimUpload {
        key: key.into(),
        content: PimContent::Contact(Box::new(objects.into_iter().next().unwrap())),
    }
}

const SINGLE: &str = "BEGIN:VEVENT\r\nUID:single-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20250310T090000\r\nDTEND;TZID=Europe/Berlin:20250310T100000\r\n\
SUMMARY:Dentist\r\nEND:VEVENT\r\n";

const ALL_DAY: &str = "BEGIN:VEVENT\r\nUID:holiday-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;VALUE=DATE:20250414\r\nDTEND;VALUE=DATE:20250417\r\nSUMMARY:Easter trip\r\nEND:VEVENT\r\n";

fn meeting(start: &str, summary: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:meeting-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:{start}\r\nDTEND;TZID=Europe/Berlin:20250505T110000\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20250512T100000\r\n\
SUMMARY:{summary}\r\nORGANIZER;CN=Alice:mailto:alice@contoso.test\r\n\
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n\
ATTENDEE;CN=Carol;ROLE=OPT-PARTICIPANT:mailto:carol@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:meeting-1\r\nDTSTAMP:20250101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20250519T100000\r\n\
DTSTART;TZID=Europe/Berlin:20250519T140000\r\nDTEND;TZID=Europe/Berlin:20250519T150000\r\n\
SUMMARY:{summary} (afternoon)\r\nORGANIZER;CN=Alice:mailto:alice@contoso.test\r\n\
ATTENDEE;CN=Bob:mailto:bob@example.com\r\nATTENDEE;CN=Carol:mailto:carol@example.com\r\nEND:VEVENT\r\n"
    )
}

/// An event's or occurrence's start, as Graph's `dateTime` text.
fn start_of(v: &Value) -> &str {
    v["start"]["dateTime"].as_str().unwrap()
}

/// The occurrence among `instances` starting on `day` (`YYYY-MM-DD`).
fn occurrence_on<'a>(instances: &'a [Value], day: &str) -> &'a Value {
    instances
        .iter()
        .find(|i| start_of(i).starts_with(day))
        .unwrap_or_else(|| panic!("no occurrence on {day}: {instances:#?}"))
}

fn events_of(pim: &Value) -> Vec<Value> {
    pim["events"].as_array().cloned().unwrap_or_default()
}

fn field<'a>(listed: &'a cutover::target::pim::PimListed, name: &str) -> &'a str {
    listed
        .fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {listed:?}"))
}

#[tokio::test]
async fn single_and_all_day_events_are_written_found_and_listed() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "Work", None, None).await.unwrap();
    // Found again by name (another case), and by the reference.
    assert_eq!(
        s.ensure_collection(ItemKind::Event, "work", None, None).await.unwrap(),
        cal
    );
    assert_eq!(
        s.ensure_collection(ItemKind::Event, "Work", Some(&cal), None)
            .await
            .unwrap(),
        cal
    );
    let default = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    assert_ne!(default, cal);
    // A new calendar takes the source calendar's colour, as near as
    // Outlook's named colours go.
    let green = s
        .ensure_collection(ItemKind::Event, "Holidays", None, Some("#0B8043FF"))
        .await
        .unwrap();
    let calendars = emu.pim().await["calendars"].clone();
    let holidays = calendars
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == green.as_str())
        .unwrap_or_else(|| panic!("{calendars:#}"));
    assert_eq!(holidays["color"], "lightGreen", "{holidays:#}");

    let single = event(SINGLE, "k-single");
    let all_day = event(ALL_DAY, "k-allday");
    let w1 = s.create(&cal, &single).await.unwrap();
    let w2 = s.create(&cal, &all_day).await.unwrap();
    assert!(!w1.id.contains(' ') && !w2.id.contains(' '));
    assert_eq!(s.find(&cal, &single).await.unwrap().as_deref(), Some(w1.id.as_str()));
    assert_eq!(s.find(&cal, &all_day).await.unwrap().as_deref(), Some(w2.id.as_str()));
    assert_eq!(
        s.find(&default, &single).await.unwrap(),
        None,
        "not in another calendar"
    );

    let pim = emu.pim().await;
    let events = events_of(&pim);
    assert_eq!(events.len(), 2);
    let dentist = events.iter().find(|e| e["subject"] == "Dentist").unwrap();
    // 09:00 in Berlin in March is 08:00 UTC.
    assert!(start_of(dentist).starts_with("2025-03-10T08:00:00"));
    let trip = events.iter().find(|e| e["subject"] == "Easter trip").unwrap();
    assert_eq!(trip["isAllDay"], true);

    let mut listed = s.list(ItemKind::Event, &cal).await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].key.as_deref(), Some("k-allday"));
    assert_eq!(field(&listed[0], "isAllDay"), "true");
    assert_eq!(field(&listed[0], "subject"), "Easter trip");
    assert_eq!(listed[1].key.as_deref(), Some("k-single"));
    assert_eq!(field(&listed[1], "start"), "2025-03-10T08:00:00Z");
    assert_eq!(field(&listed[1], "end"), "2025-03-10T09:00:00Z");
    assert_eq!(field(&listed[1], "recurrence"), "");
    assert_eq!(field(&listed[1], "attendees"), "");
    // A calendar that does not exist lists as empty.
    assert!(
        s.list(ItemKind::Event, "AAMkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_series_keeps_its_cancelled_and_changed_occurrences() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    let w = s.create(&cal, &event(SERIES, "k-series")).await.unwrap();

    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1, "one series, not single events");
    let series = &events[0];
    assert_eq!(series["id"].as_str(), Some(w.id.as_str()));
    assert_eq!(series["recurrence"]["pattern"]["type"], "weekly");
    let instances = series["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 9, "ten Mondays less the cancelled one: {instances:#?}");
    let starts: Vec<&str> = instances.iter().map(start_of).collect();
    assert!(
        !starts.iter().any(|s| s.starts_with("2025-03-17")),
        "17 March is cancelled: {starts:?}"
    );
    let moved = occurrence_on(instances, "2025-03-24");
    // 11:00 Berlin (CET) is 10:00 UTC; after the switch to summer time the
    // others stay at 09:00 Berlin, 07:00 UTC.
    assert!(start_of(moved).starts_with("2025-03-24T10:00:00"));
    assert_eq!(moved["subject"], "Standup (moved)");
    assert_eq!(moved["type"], "exception");
    assert!(
        starts.iter().any(|s| s.starts_with("2025-04-07T07:00:00")),
        "{starts:?}"
    );
    let state = series["singleValueExtendedProperties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_str().unwrap().to_lowercase().ends_with("cutoveritemstate"))
        .unwrap();
    assert_eq!(state["value"], "done");

    let listed = s.list(ItemKind::Event, &cal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        field(&listed[0], "recurrence"),
        "weekly interval=1 days=monday from=2025-03-03 count=10"
    );
}

#[tokio::test]
async fn meetings_are_written_and_kept_without_sending_anything() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s
        .ensure_collection(ItemKind::Event, "Meetings", None, None)
        .await
        .unwrap();
    let item = event(&meeting("20250505T100000", "Review"), "k-meeting");
    let w = s.create(&cal, &item).await.unwrap();
    // The same create again, as after a lost answer: the same event, and
    // the finished meeting is not touched again.
    let again = s.create(&cal, &item).await.unwrap();
    assert_eq!(again.id, w.id);
    assert_eq!(emu.notices().await, (0, 0));

    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    let m = &events[0];
    assert_eq!(m["isDraft"], false, "the meeting must not stay a draft");
    assert_eq!(m["attendees"].as_array().unwrap().len(), 2);
    let instances = m["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "four weeks less 12 May: {instances:#?}");
    let moved = occurrence_on(instances, "2025-05-19");
    assert!(start_of(moved).starts_with("2025-05-19T12:00:00"));

    // A new subject sends nothing and is written.
    let renamed = event(&meeting("20250505T100000", "Quarterly review"), "k-meeting");
    let u = s.update(&cal, &w.id, &renamed).await.unwrap();
    assert_eq!(u.id, w.id);
    assert_eq!(events_of(&emu.pim().await)[0]["subject"], "Quarterly review");
    // A new time would send an update: refused, nothing changed.
    let retimed = event(
        &meeting("20250505T100000", "Quarterly review").replacen("20250505T110000", "20250505T113000", 1),
        "k-meeting",
    );
    let err = s.update(&cal, &w.id, &retimed).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused);
    assert!(
        err.message.contains("meeting-1") && err.message.contains("update"),
        "{}",
        err.message
    );
    // Deleting would send a cancellation: refused, still there.
    let err = s.delete(ItemKind::Event, &cal, &w.id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused);
    assert!(err.message.contains("cancellation"), "{}", err.message);
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    assert!(
        events[0]["end"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2025-05-05T09:00:00")
    );
    assert_eq!(emu.notices().await, (0, 0));

    let listed = s.list(ItemKind::Event, &cal).await.unwrap();
    assert_eq!(field(&listed[0], "attendees"), "bob@example.com,carol@example.com");
}

#[tokio::test]
async fn appointments_are_updated_and_deleted() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    let w = s.create(&cal, &event(SERIES, "k-series")).await.unwrap();
    let changed = SERIES
        .replacen("SUMMARY:Standup\r\n", "SUMMARY:Daily sync\r\n", 1)
        .replace("COUNT=10", "COUNT=5");
    let u = s.update(&cal, &w.id, &event(&changed, "k-series")).await.unwrap();
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1, "replaced, not added: {events:#?}");
    assert_eq!(events[0]["id"].as_str(), Some(u.id.as_str()));
    assert_eq!(events[0]["subject"], "Daily sync");
    assert_eq!(events[0]["instances"].as_array().unwrap().len(), 4);
    assert_eq!(
        s.find(&cal, &event(&changed, "k-series")).await.unwrap(),
        Some(u.id.clone())
    );

    s.delete(ItemKind::Event, &cal, &u.id).await.unwrap();
    assert!(events_of(&emu.pim().await).is_empty());
    // Gone already is fine.
    s.delete(ItemKind::Event, &cal, &u.id).await.unwrap();
    // Updating what is gone is an item error naming the item.
    let err = s.update(&cal, &u.id, &event(&changed, "k-series")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Item);
    assert!(err.message.contains("weekly-1"), "{}", err.message);
    assert_eq!(emu.notices().await, (0, 0));
}

/// A 1×1 PNG.
const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[tokio::test]
async fn contacts_keep_what_exchange_cannot_hold_in_notes_and_get_their_photo() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let folder = s
        .ensure_collection(ItemKind::Contact, "Friends", None, None)
        .await
        .unwrap();
    assert_eq!(
        s.ensure_collection(ItemKind::Contact, "Friends", None, None)
            .await
            .unwrap(),
        folder
    );

    let card = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:anna-1\r\nFN:Anna Schmidt\r\nN:Schmidt;Anna;;;\r\n\
EMAIL:a1@example.com\r\nEMAIL:a2@example.com\r\nEMAIL:a3@example.com\r\nEMAIL:a4@example.com\r\n\
EMAIL:a5@example.com\r\nPHOTO;ENCODING=b;TYPE=PNG:{PNG_B64}\r\nEND:VCARD\r\n"
    );
    let anna = contact(&card, "k-anna");
    let w = s.create(&folder, &anna).await.unwrap();
    assert!(
        w.notes
            .iter()
            .any(|n| n.contains("a4@example.com") && n.contains("a5@example.com")),
        "{:?}",
        w.notes
    );
    let no_given = contact(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:acme-1\r\nFN:ACME Support\r\nORG:ACME\r\nEMAIL:help@acme.example\r\nEND:VCARD\r\n",
        "k-acme",
    );
    let w2 = s.create(&folder, &no_given).await.unwrap();
    assert!(w2.notes.iter().any(|n| n.contains("given name")), "{:?}", w2.notes);

    let pim = emu.pim().await;
    let contacts = pim["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2);
    let a = contacts
        .iter()
        .find(|c| c["id"].as_str() == Some(w.id.as_str()))
        .unwrap();
    assert_eq!(a["emailAddresses"].as_array().unwrap().len(), 3);
    assert!(
        a["personalNotes"].as_str().unwrap_or("").contains("a5@example.com"),
        "{a:#}"
    );
    assert_eq!(a["photo"]["contentType"], "image/png");
    let acme = contacts
        .iter()
        .find(|c| c["id"].as_str() == Some(w2.id.as_str()))
        .unwrap();
    assert_eq!(acme["givenName"], "ACME Support");

    assert_eq!(s.find(&folder, &anna).await.unwrap(), Some(w.id.clone()));
    assert_eq!(s.find(DEFAULT_CONTACTS_REF, &anna).await.unwrap(), None);

    // Update: a new address list, kept in place.
    let card2 = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:anna-1\r\nFN:Anna Meyer\r\nN:Meyer;Anna;;;\r\n\
EMAIL:anna@new.example\r\nEND:VCARD\r\n";
    let u = s.update(&folder, &w.id, &contact(card2, "k-anna")).await.unwrap();
    assert_eq!(u.id, w.id);
    let mut listed = s.list(ItemKind::Contact, &folder).await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].key.as_deref(), Some("k-anna"));
    assert_eq!(field(&listed[1], "displayName"), "Anna Meyer");
    assert_eq!(field(&listed[1], "emails"), "anna@new.example");
    let pim = emu.pim().await;
    let a = pim["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_str() == Some(w.id.as_str()))
        .cloned()
        .unwrap();
    assert_eq!(a["surname"], "Meyer");
    assert!(
        !a["personalNotes"].as_str().unwrap_or("").contains("a5@example.com"),
        "the old card's notes are gone: {a:#}"
    );

    s.delete(ItemKind::Contact, &folder, &w2.id).await.unwrap();
    s.delete(ItemKind::Contact, &folder, &w2.id).await.unwrap();
    assert_eq!(s.list(ItemKind::Contact, &folder).await.unwrap().len(), 1);
}

/// The reference of the default Contacts folder.
const DEFAULT_CONTACTS_REF: &str = "contacts";

#[tokio::test]
async fn lost_answers_make_no_duplicates() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    let folder = s.ensure_collection(ItemKind::Contact, "", None, None).await.unwrap();
    // Exchange stores the event and the contact, and the answers are lost.
    emu.faults(json!({"fail_next": [
        {"drop": "reset_after", "count": 1, "on": "/events"},
        {"drop": "reset_after", "count": 1, "on": "/contacts"},
    ]}))
    .await;
    let item = event(&meeting("20250505T100000", "Review"), "k-meeting");
    let w = s.create(&cal, &item).await.unwrap();
    let ben = contact(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ben-1\r\nFN:Ben Okafor\r\nN:Okafor;Ben;;;\r\nEMAIL:ben@example.com\r\nEND:VCARD\r\n",
        "k-ben",
    );
    let c = s.create(&folder, &ben).await.unwrap();
    let pim = emu.pim().await;
    let events = events_of(&pim);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["id"].as_str(), Some(w.id.as_str()));
    assert_eq!(events[0]["isDraft"], false);
    let contacts = pim["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    assert_eq!(contacts[0]["id"].as_str(), Some(c.id.as_str()));
    let stats = emu.admin("stats").await;
    assert!(
        stats["total"]["faults_injected"]
            .as_object()
            .is_some_and(|f| !f.is_empty()),
        "the faults were not reached: {stats:#}"
    );
    assert_eq!(emu.notices().await, (0, 0));
}

#[tokio::test]
async fn an_interrupted_silent_meeting_is_found_and_finished() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    // The run stops at the first PATCH after the draft was created (the
    // changed occurrence), before the meeting was made an ordinary one.
    emu.faults(json!({"fail_next": [{"status": 400, "count": 1, "on": "PATCH "}]}))
        .await;
    let item = event(&meeting("20250505T100000", "Review"), "k-meeting");
    let err = s.create(&cal, &item).await.unwrap_err();
    assert!(err.message.contains("meeting-1"), "{}", err.message);
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["isDraft"], true, "left as a draft by the failure");

    // The next run looks before writing: found, finished, silently.
    let found = s.find(&cal, &item).await.unwrap().expect("the draft is found");
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"].as_str(), Some(found.as_str()));
    assert_eq!(events[0]["isDraft"], false);
    let moved = occurrence_on(events[0]["instances"].as_array().unwrap(), "2025-05-19");
    assert!(start_of(moved).starts_with("2025-05-19T12:00:00"));
    assert_eq!(emu.notices().await, (0, 0));
}

/// Twice a day (09:00 and 15:00), four times: a rule Graph's
/// patternedRecurrence cannot hold, so four single events.
const TWICE_DAILY: &str = "BEGIN:VEVENT\r\nUID:pills-1\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20250602T090000\r\nDTEND;TZID=Europe/Berlin:20250602T091500\r\n\
RRULE:FREQ=DAILY;BYHOUR=9,15;COUNT=4\r\nSUMMARY:Pills\r\n\
ATTACH;ENCODING=BASE64;VALUE=BINARY;FMTTYPE=text/plain;X-FILENAME=dose.txt:MiB0YWJsZXRz\r\n\
END:VEVENT\r\n";

#[tokio::test]
async fn a_rule_exchange_cannot_hold_becomes_single_events_under_one_id() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    let item = event(TWICE_DAILY, "k-pills");
    let w = s.create(&cal, &item).await.unwrap();
    let ids: Vec<&str> = w.id.split(' ').collect();
    assert_eq!(ids.len(), 4, "{}", w.id);
    assert!(w.notes.iter().any(|n| n.contains("4 single events")), "{:?}", w.notes);
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 4);
    for e in &events {
        assert_eq!(e["subject"], "Pills");
        assert_eq!(e["attachments"].as_array().unwrap().len(), 1, "{e:#}");
        assert_eq!(e["attachments"][0]["name"], "dose.txt");
    }
    // Written again after a lost answer: the same events, no second attachment.
    assert_eq!(s.create(&cal, &item).await.unwrap().id, w.id);
    assert_eq!(s.find(&cal, &item).await.unwrap(), Some(w.id.clone()));
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["attachments"].as_array().unwrap().len() == 1));
    let listed = s.list(ItemKind::Event, &cal).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|l| l.key.as_deref() == Some("k-pills")), "{listed:?}");
    let mut starts: Vec<&str> = listed.iter().map(|l| field(l, "start")).collect();
    starts.sort();
    assert_eq!(
        starts,
        [
            "2025-06-02T07:00:00Z",
            "2025-06-02T13:00:00Z",
            "2025-06-03T07:00:00Z",
            "2025-06-03T13:00:00Z"
        ]
    );
    s.delete(ItemKind::Event, &cal, &w.id).await.unwrap();
    assert!(events_of(&emu.pim().await).is_empty());
}

/// `bytes` as an inline iCalendar attachment, base64 folded at 75 octets
/// as RFC 5545 writes long lines.
fn attach_line(name: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    let line = format!(
        "ATTACH;ENCODING=BASE64;VALUE=BINARY;FMTTYPE=application/pdf;X-FILENAME={name}:{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    let mut out = String::with_capacity(line.len() + line.len() / 37 + 2);
    for (i, chunk) in line.as_bytes().chunks(74).enumerate() {
        if i > 0 {
            out.push_str("\r\n ");
        }
        out.push_str(std::str::from_utf8(chunk).unwrap());
    }
    out.push_str("\r\n");
    out
}

/// A file of `n` bytes that is not UTF-8 (so the calendar hands it over as
/// binary), with a pattern that shows a misplaced range.
fn file_of(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| if i == 0 { 0xFF } else { (i * 7 % 251) as u8 })
        .collect()
}

/// Bytes of the big attachment: over Graph's 3 MB for one request.
const BIG: usize = 5 * 1024 * 1024 + 333;

/// The attachments the emulator holds on `event`: (name, size).
fn attachments_on(event: &Value) -> Vec<(String, u64)> {
    event["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap().to_owned(), a["size"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn an_event_attachment_over_3_mb_goes_through_an_upload_session_once() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s.ensure_collection(ItemKind::Event, "", None, None).await.unwrap();
    let ics = SINGLE.replace(
        "SUMMARY:Dentist\r\n",
        &format!(
            "SUMMARY:Dentist\r\n{}{}",
            attach_line("big.pdf", &file_of(BIG)),
            attach_line("small.pdf", &file_of(2048))
        ),
    );
    let item = event(&ics, "k-big");
    // The run stops at the PATCH that would mark the event done, after
    // both attachments were added.
    emu.faults(json!({"fail_next": [{"status": 400, "count": 1, "on": "PATCH "}]}))
        .await;
    let err = s.create(&cal, &item).await.unwrap_err();
    assert!(err.message.contains("single-1"), "{}", err.message);
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    let mut held = attachments_on(&events[0]);
    held.sort();
    assert_eq!(
        held,
        vec![("big.pdf".to_owned(), BIG as u64), ("small.pdf".to_owned(), 2048)]
    );

    // The next run finds it unfinished and finishes it: each attachment
    // still once.
    let found = s.find(&cal, &item).await.unwrap().expect("the event is found");
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"].as_str(), Some(found.as_str()));
    let mut held = attachments_on(&events[0]);
    held.sort();
    assert_eq!(
        held,
        vec![("big.pdf".to_owned(), BIG as u64), ("small.pdf".to_owned(), 2048)]
    );
    let stats = emu.admin("stats").await;
    assert_eq!(
        stats["total"]["by_kind"]["upload.put"], 2,
        "5 MB in ranges of 3.75 MiB is two PUTs, sent once: {stats:#}"
    );
    assert_eq!(stats["total"]["by_kind"]["events.createUploadSession"], 1, "{stats:#}");
}

#[tokio::test]
async fn a_meeting_with_a_large_attachment_sends_no_invitation() {
    let emu = Emu::start();
    let target = emu.target();
    let mut s = emu.session(&target).await;
    let cal = s
        .ensure_collection(ItemKind::Event, "Meetings", None, None)
        .await
        .unwrap();
    let ics = meeting("20250505T100000", "Review").replacen(
        "SUMMARY:Review\r\n",
        &format!("SUMMARY:Review\r\n{}", attach_line("big.pdf", &file_of(BIG))),
        1,
    );
    let item = event(&ics, "k-meeting");
    // The first range's answer is lost after Exchange took it: the upload
    // is settled by reading the event's attachments, not sent twice.
    emu.faults(json!({"fail_next": [{"drop": "reset_after", "on": "PUT /_upload/", "count": 1}]}))
        .await;
    let w = s.create(&cal, &item).await.unwrap();
    assert!(w.notes.iter().all(|n| !n.contains("big.pdf")), "{:?}", w.notes);
    let events = events_of(&emu.pim().await);
    assert_eq!(events.len(), 1);
    let m = &events[0];
    assert_eq!(m["id"].as_str(), Some(w.id.as_str()));
    assert_eq!(m["isDraft"], false, "the meeting must not stay a draft");
    assert_eq!(m["attendees"].as_array().unwrap().len(), 2);
    assert_eq!(attachments_on(m), vec![("big.pdf".to_owned(), BIG as u64)]);
    let stats = emu.admin("stats").await;
    assert!(
        stats["total"]["faults_injected"]
            .as_object()
            .is_some_and(|f| !f.is_empty()),
        "the fault was not reached: {stats:#}"
    );
    assert_eq!(emu.notices().await, (0, 0), "no invitation, no update");
}
