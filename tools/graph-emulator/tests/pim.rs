//! Integration tests of the emulator's contacts and calendars: each
//! documented rule accepted and refused, transactionId, the invitations
//! Exchange would send (and the silent-meeting flow that sends none),
//! recurrence instances across DST with cancelled and changed occurrences,
//! and the shared throttling budget.

mod common;

#[allow(dead_code)]
#[path = "../../../tests/support/emulator.rs"]
mod emulator;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{batch_statuses, error_code, send_json};
use emulator::{CLIENT, Emulator, RunningEmulator, TENANT};

const SECRET: &str = "s3cret-value";
const USER: &str = "alice@contoso.test";
const DRAFT_PROP: &str = "Boolean {00062002-0000-0000-C000-000000000046} Name EventDraft";
const INTENDED_DRAFT_PROP: &str = "Boolean {00062002-0000-0000-C000-000000000046} Name IntendedEventDraft";

struct Emu {
    _server: RunningEmulator,
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Emu {
    async fn start(extra: &[&str]) -> Emu {
        let server = Emulator::new().client_secret(SECRET).seed(7).args(extra).start();
        let base = server.base_url.clone();
        let http = reqwest::Client::new();
        let scope = format!("{base}/.default");
        let r = http
            .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", scope.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        Emu {
            _server: server,
            base,
            http,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else if path.starts_with("/_emulator") || path.starts_with("/v1.0/$batch") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v1.0/users/{USER}{path}", self.base)
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>, prefer: Option<&str>) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(p) = prefer {
            rb = rb.header("prefer", p);
        }
        let (status, _, v) = send_json(rb).await;
        (status, v)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body), None).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body), None).await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.call(Method::DELETE, path, None, None).await.0
    }

    async fn stats(&self) -> Value {
        self.get("/_emulator/stats").await.1
    }

    /// (invitations, cancellations) sent for USER.
    async fn sent(&self) -> (u64, u64) {
        let s = self.stats().await;
        let m = &s["mailboxes"][USER];
        (
            m["invitations_sent"].as_u64().unwrap_or(0),
            m["cancellations_sent"].as_u64().unwrap_or(0),
        )
    }
}

/// Asserts a refusal's status and error code.
fn refused(r: (StatusCode, Value), status: u16, error: &str) {
    assert_eq!(r.0.as_u16(), status, "{}", r.1);
    assert_eq!(error_code(&r.1), error, "{}", r.1);
}

fn meeting(subject: &str, attendees: &[&str]) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": "2026-06-01T10:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-06-01T11:00:00", "timeZone": "W. Europe Standard Time"},
        "attendees": attendees.iter().map(|a| json!({"emailAddress": {"address": a}, "type": "required"})).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn contact_folders_and_contacts_follow_graph_rules() {
    let emu = Emu::start(&[]).await;
    let (s, folder) = emu.post("/contactFolders", json!({"displayName": "Friends"})).await;
    assert_eq!(s, 201);
    let fid = folder["id"].as_str().unwrap().to_string();
    refused(
        emu.post("/contactFolders", json!({"displayName": "friends"})).await,
        409,
        "ErrorFolderExists",
    );
    refused(
        emu.post("/contactFolders", json!({"name": "x"})).await,
        400,
        "RequestBodyRead",
    );
    let (s, child) = emu
        .post(
            &format!("/contactFolders/{fid}/childFolders"),
            json!({"displayName": "School"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(child["parentFolderId"], fid);
    let (_, list) = emu.get("/contactFolders").await;
    assert_eq!(
        list["value"].as_array().unwrap().len(),
        1,
        "children of the default Contacts folder only"
    );

    let full = json!({
        "givenName": "Ada", "surname": "Lovelace",
        "birthday": "1815-12-10T00:00:00Z",
        "emailAddresses": [{"address": "ada@example.org", "name": "Ada"}, {"address": "a2@example.org"}, {"address": "a3@example.org"}],
        "businessPhones": ["+44 1"], "homePhones": ["+44 2", "+44 3"], "mobilePhone": "+44 4",
        "homeAddress": {"street": "1 St James's Square", "city": "London", "countryOrRegion": "UK", "postalCode": "SW1"},
        "categories": ["Math"],
        "singleValueExtendedProperties": [{"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SourceId", "value": "src-1"}],
    });
    let (s, c) = emu.post(&format!("/contactFolders/{fid}/contacts"), full.clone()).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["displayName"], "Ada Lovelace");
    assert_eq!(c["parentFolderId"], fid);
    assert_eq!(c["homeAddress"]["city"], "London");
    let cid = c["id"].as_str().unwrap().to_string();

    // Refusals, each with Graph's status and code.
    let mut four = full.clone();
    four["emailAddresses"]
        .as_array_mut()
        .unwrap()
        .push(json!({"address": "a4@example.org"}));
    refused(emu.post("/contacts", four).await, 400, "ErrorInvalidArgument");
    refused(
        emu.post("/contacts", json!({"givenName": "X", "nickname": "y"})).await,
        400,
        "RequestBodyRead",
    );
    refused(
        emu.post("/contacts", json!({"birthday": "tenth of December"})).await,
        400,
        "RequestBodyRead",
    );
    refused(
        emu.post("/contacts", json!({"mobilePhone": ["+1"]})).await,
        400,
        "RequestBodyRead",
    );
    refused(
        emu.post("/contacts", json!({"businessPhones": "+1"})).await,
        400,
        "RequestBodyRead",
    );
    refused(
        emu.post("/contacts", json!({"homeAddress": {"town": "x"}})).await,
        400,
        "RequestBodyRead",
    );
    refused(
        emu.post("/contacts", json!({"businessPhones": ["1", "2", "3"]})).await,
        400,
        "ErrorInvalidArgument",
    );
    refused(
        emu.post("/contacts", json!({"surname": "Only"})).await,
        400,
        "ErrorInvalidProperty",
    );

    // PATCH, GET under the folder and in the mailbox, $select.
    let (s, p) = emu
        .patch(&format!("/contacts/{cid}"), json!({"jobTitle": "Analyst"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["jobTitle"], "Analyst");
    assert_ne!(p["changeKey"], c["changeKey"]);
    let (s, g) = emu
        .get(&format!(
            "/contactFolders/{fid}/contacts/{cid}?$select=displayName,jobTitle"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(g["jobTitle"], "Analyst");
    assert!(g.get("surname").is_none(), "$select leaves other properties out");
    refused(
        emu.get(&format!("/contacts/{cid}?$select=nope")).await,
        400,
        "RequestBroker--ParseUri",
    );
    // Not in the default folder when addressed through another folder.
    let other = child["id"].as_str().unwrap();
    refused(
        emu.get(&format!("/contactFolders/{other}/contacts/{cid}")).await,
        404,
        "ErrorItemNotFound",
    );
    refused(emu.get("/contacts/not-an-id").await, 400, "ErrorInvalidIdMalformed");

    // $filter on displayName and on an extended property, with $expand.
    for i in 0..3 {
        let (s, _) = emu
            .post(
                &format!("/contactFolders/{fid}/contacts"),
                json!({"givenName": format!("P{i}")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (_, f) = emu
        .get(&format!("/contactFolders/{fid}/contacts?$filter=displayName eq 'P1'"))
        .await;
    assert_eq!(f["value"].as_array().unwrap().len(), 1);
    let filter = "singleValueExtendedProperties/Any(ep: ep/id eq 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SourceId' and ep/value eq 'src-1')";
    let expand =
        "singleValueExtendedProperties($filter=id eq 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SourceId')";
    let (_, f) = emu
        .get(&format!(
            "/contactFolders/{fid}/contacts?$filter={filter}&$expand={expand}"
        ))
        .await;
    let found = f["value"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], cid);
    assert_eq!(found[0]["singleValueExtendedProperties"][0]["value"], "src-1");
    // Paging.
    let (_, p1) = emu.get(&format!("/contactFolders/{fid}/contacts?$top=3")).await;
    assert_eq!(p1["value"].as_array().unwrap().len(), 3);
    let next = p1["@odata.nextLink"].as_str().unwrap().to_string();
    let (_, p2) = emu.get(&next).await;
    assert_eq!(p2["value"].as_array().unwrap().len(), 1);
    assert!(p2.get("@odata.nextLink").is_none());

    // Photo: image bytes, typed, at most 4 MB.
    let photo = |ct: &str, bytes: Vec<u8>| {
        emu.http
            .put(emu.url(&format!("/contacts/{cid}/photo/$value")))
            .bearer_auth(&emu.token)
            .header("content-type", ct)
            .body(bytes)
            .send()
    };
    assert_eq!(
        photo("image/jpeg", vec![0xff, 0xd8, 0xff, 0xe0])
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(photo("text/plain", vec![1]).await.unwrap().status(), 415);
    assert_eq!(
        photo("image/jpeg", vec![0; 4 * 1024 * 1024 + 1])
            .await
            .unwrap()
            .status(),
        413
    );
    let got = emu
        .http
        .get(emu.url(&format!("/contacts/{cid}/photo/$value")))
        .bearer_auth(&emu.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), &[0xff, 0xd8, 0xff, 0xe0]);

    assert_eq!(emu.delete(&format!("/contacts/{cid}")).await, 204);
    refused(emu.get(&format!("/contacts/{cid}")).await, 404, "ErrorItemNotFound");
    let dump = emu.get(&format!("/_emulator/mailboxes/{USER}/pim")).await.1;
    assert_eq!(dump["contacts"].as_array().unwrap().len(), 3);
    assert_eq!(dump["contactFolders"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn events_are_validated_as_graph_documents() {
    let emu = Emu::start(&[]).await;
    let ev = |start: &str, end: &str, tz: &str| json!({"subject": "s", "start": {"dateTime": start, "timeZone": tz}, "end": {"dateTime": end, "timeZone": tz}});
    // Windows and IANA names are accepted; anything else is not.
    assert_eq!(
        emu.post(
            "/events",
            ev("2026-05-04T09:00:00", "2026-05-04T10:00:00", "Pacific Standard Time")
        )
        .await
        .0,
        201
    );
    assert_eq!(
        emu.post(
            "/events",
            ev("2026-05-04T09:00:00", "2026-05-04T10:00:00", "Europe/Berlin")
        )
        .await
        .0,
        201
    );
    refused(
        emu.post(
            "/events",
            ev("2026-05-04T09:00:00", "2026-05-04T10:00:00", "Berlin Time"),
        )
        .await,
        400,
        "TimeZoneNotSupportedException",
    );
    refused(
        emu.post("/events", ev("2026-05-04T10:00:00", "2026-05-04T09:00:00", "UTC"))
            .await,
        400,
        "ErrorPropertyValidationFailure",
    );
    let mut all_day = ev("2026-05-04T00:00:00", "2026-05-05T00:00:00", "UTC");
    all_day["isAllDay"] = json!(true);
    assert_eq!(emu.post("/events", all_day.clone()).await.0, 201);
    all_day["end"]["dateTime"] = json!("2026-05-05T12:00:00");
    refused(
        emu.post("/events", all_day).await,
        400,
        "ErrorPropertyValidationFailure",
    );
    // The zone belongs in timeZone, not in dateTime.
    refused(
        emu.post("/events", ev("2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z", "UTC"))
            .await,
        400,
        "RequestBodyRead",
    );
    // Graph's event actions this emulator leaves out answer 501, not 400.
    refused(emu.post("/events/x/accept", json!({})).await, 501, "NotImplemented");
    let mut unknown = ev("2026-05-04T09:00:00", "2026-05-04T10:00:00", "UTC");
    unknown["colour"] = json!("red");
    refused(emu.post("/events", unknown).await, 400, "RequestBodyRead");
    let mut bad_type = ev("2026-05-04T09:00:00", "2026-05-04T10:00:00", "UTC");
    bad_type["isAllDay"] = json!("yes");
    refused(emu.post("/events", bad_type).await, 400, "RequestBodyRead");

    // Recurrence rules.
    let recurring = |pattern: Value, range: Value| {
        let mut e = ev("2026-05-04T09:00:00", "2026-05-04T10:00:00", "Europe/Berlin");
        e["recurrence"] = json!({"pattern": pattern, "range": range});
        e
    };
    let range = json!({"type": "noEnd", "startDate": "2026-05-04"});
    let weekly = json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]});
    assert_eq!(
        emu.post("/events", recurring(weekly.clone(), range.clone())).await.0,
        201
    );
    for pattern in [
        json!({"type": "weekly", "interval": 1}),
        json!({"type": "weekly", "interval": 0, "daysOfWeek": ["monday"]}),
        json!({"type": "daily", "interval": 1, "daysOfWeek": ["monday"]}),
        json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 4}),
        json!({"type": "relativeMonthly", "interval": 1}),
    ] {
        refused(
            emu.post("/events", recurring(pattern, range.clone())).await,
            400,
            "ErrorPropertyValidationFailure",
        );
    }
    refused(
        emu.post(
            "/events",
            recurring(
                json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "fifth"}),
                range.clone(),
            ),
        )
        .await,
        400,
        "RequestBodyRead",
    );
    for bad_range in [
        json!({"type": "noEnd", "startDate": "2026-05-05"}),
        json!({"type": "endDate", "startDate": "2026-05-04"}),
        json!({"type": "numbered", "startDate": "2026-05-04", "numberOfOccurrences": 0}),
        json!({"type": "endDate", "startDate": "2026-05-04", "endDate": "2026-05-01"}),
    ] {
        refused(
            emu.post("/events", recurring(weekly.clone(), bad_range)).await,
            400,
            "ErrorPropertyValidationFailure",
        );
    }

    // 500 attendees at most.
    let many: Vec<String> = (0..501).map(|i| format!("p{i}@example.org")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    refused(
        emu.post("/events", meeting("big", &refs)).await,
        400,
        "ErrorPropertyValidationFailure",
    );
    let mut ok = meeting("big", &refs[..500]);
    ok["isDraft"] = json!(true);
    assert_eq!(emu.post("/events", ok).await.0, 201);

    // The organizer is the mailbox owner whatever the request says;
    // extended properties come back with $expand and can be filtered on.
    let mut body = meeting("mine", &[]);
    body["organizer"] = json!({"emailAddress": {"address": "someone@else.example"}});
    body["singleValueExtendedProperties"] =
        json!([{"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SourceId", "value": "ev-9"}]);
    let (s, created) = emu.post("/calendar/events", body).await;
    assert_eq!(s, 201);
    assert_eq!(created["organizer"]["emailAddress"]["address"], USER);
    assert_eq!(created["isOrganizer"], true);
    let id = created["id"].as_str().unwrap();
    let filter = "singleValueExtendedProperties/Any(ep: ep/id eq 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SourceId' and ep/value eq 'ev-9')";
    let (_, found) = emu.get(&format!("/events?$filter={filter}")).await;
    assert_eq!(found["value"].as_array().unwrap().len(), 1);
    assert_eq!(found["value"][0]["id"], id);
    let expand =
        "singleValueExtendedProperties($filter=id eq 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SourceId')";
    let (_, got) = emu.get(&format!("/events/{id}?$expand={expand}")).await;
    assert_eq!(got["singleValueExtendedProperties"][0]["value"], "ev-9");
    // Times come back in UTC, or in the zone Prefer asks for.
    assert_eq!(got["start"]["dateTime"], "2026-06-01T08:00:00.0000000");
    assert_eq!(got["start"]["timeZone"], "UTC");
    let (_, local) = emu
        .call(
            Method::GET,
            &format!("/events/{id}"),
            None,
            Some("outlook.timezone=\"Europe/Berlin\""),
        )
        .await;
    assert_eq!(local["start"]["dateTime"], "2026-06-01T10:00:00.0000000");

    // Calendars: created, listed, events in them, unknown ids refused.
    let (s, cal) = emu
        .post("/calendars", json!({"name": "Migrated", "color": "lightBlue"}))
        .await;
    assert_eq!(s, 201);
    refused(
        emu.post("/calendars", json!({"name": "migrated"})).await,
        409,
        "ErrorFolderExists",
    );
    refused(
        emu.post("/calendars", json!({"name": "x", "owner": {}})).await,
        400,
        "RequestBodyRead",
    );
    let cal_id = cal["id"].as_str().unwrap();
    let (s, in_cal) = emu
        .post(&format!("/calendars/{cal_id}/events"), meeting("in cal", &[]))
        .await;
    assert_eq!(s, 201);
    let (_, listed) = emu.get(&format!("/calendars/{cal_id}/events")).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    refused(
        emu.get(&format!("/calendar/events/{}", in_cal["id"].as_str().unwrap()))
            .await,
        404,
        "ErrorItemNotFound",
    );
    let (_, cals) = emu.get("/calendars").await;
    assert_eq!(cals["value"].as_array().unwrap().len(), 2);

    // Event attachments: 3 MB at most.
    let small = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt", "contentBytes": "aGVsbG8="});
    assert_eq!(emu.post(&format!("/events/{id}/attachments"), small).await.0, 201);
    let big = base64_of(3 * 1024 * 1024 + 1);
    let too_big = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "b.bin", "contentBytes": big});
    refused(
        emu.post(&format!("/events/{id}/attachments"), too_big).await,
        413,
        "ErrorRequestEntityTooLarge",
    );
    let (_, got) = emu.get(&format!("/events/{id}")).await;
    assert_eq!(got["hasAttachments"], true);
}

fn base64_of(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
}

#[tokio::test]
async fn transaction_id_twice_creates_one_event() {
    let emu = Emu::start(&[]).await;
    let mut body = meeting("retry", &["bob@example.org"]);
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let (s1, first) = emu.post("/events", body.clone()).await;
    let (s2, second) = emu.post("/events", body.clone()).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (201, 201));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["transactionId"], "7E163156-7762-4BEB-A1C6-729EA81755A7");
    let dump = emu.get(&format!("/_emulator/mailboxes/{USER}/pim")).await.1;
    assert_eq!(dump["events"].as_array().unwrap().len(), 1);
    assert_eq!(emu.sent().await, (1, 0), "the retry sent no second invitation");
    // transactionId can't be changed later.
    let id = first["id"].as_str().unwrap();
    refused(
        emu.patch(&format!("/events/{id}"), json!({"transactionId": "other"}))
            .await,
        400,
        "ErrorInvalidProperty",
    );
}

#[tokio::test]
async fn silent_meeting_sends_nothing_while_a_plain_meeting_does() {
    let emu = Emu::start(&[]).await;
    // A plain meeting: one meeting request (counted per message, not per attendee).
    let (s, plain) = emu
        .post("/events", meeting("plain", &["bob@example.org", "carol@example.org"]))
        .await;
    assert_eq!(s, 201);
    assert_eq!(emu.sent().await, (1, 0));
    // An appointment without attendees sends nothing.
    assert_eq!(emu.post("/events", meeting("alone", &[])).await.0, 201);
    assert_eq!(emu.sent().await, (1, 0));

    // new-SilentMeeting.ps1: POST with isDraft, then PATCH the two markers to false.
    let mut silent = meeting("silent", &["bob@example.org"]);
    silent["isDraft"] = json!(true);
    silent["recurrence"] = json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2026-06-01", "numberOfOccurrences": 3}});
    let (s, created) = emu.post("/events", silent).await;
    assert_eq!(s, 201);
    assert_eq!(created["isDraft"], true);
    let id = created["id"].as_str().unwrap().to_string();
    // While a draft, changing an occurrence or cancelling one sends nothing.
    let (_, inst) = emu
        .get(&format!(
            "/events/{id}/instances?startDateTime=2026-06-01T00:00:00Z&endDateTime=2026-06-05T00:00:00Z"
        ))
        .await;
    let occurrences = inst["value"].as_array().unwrap();
    assert_eq!(occurrences.len(), 3);
    let first_occ = occurrences[0]["id"].as_str().unwrap();
    assert_eq!(
        emu.patch(
            &format!("/events/{first_occ}"),
            json!({"location": {"displayName": "Room 2"}})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        emu.delete(&format!("/events/{}", occurrences[2]["id"].as_str().unwrap()))
            .await,
        204
    );
    assert_eq!(emu.sent().await, (1, 0));
    // isDraft itself can't be flipped by PATCH.
    refused(
        emu.patch(&format!("/events/{id}"), json!({"isDraft": false})).await,
        400,
        "ErrorInvalidProperty",
    );
    let (s, cleared) = emu
        .patch(
            &format!("/events/{id}"),
            json!({"singleValueExtendedProperties": [
                {"id": DRAFT_PROP, "value": "false"},
                {"id": INTENDED_DRAFT_PROP, "value": "false"},
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(cleared["isDraft"], false);
    assert_eq!(emu.sent().await, (1, 0), "the silent flow sent nothing");

    // Now an ordinary meeting: changing its location sends an update.
    assert_eq!(
        emu.patch(&format!("/events/{id}"), json!({"location": {"displayName": "Room 9"}}))
            .await
            .0,
        200
    );
    assert_eq!(emu.sent().await, (2, 0));
    // A subject change sends nothing (only time, attendees, location do).
    let plain_id = plain["id"].as_str().unwrap();
    assert_eq!(
        emu.patch(&format!("/events/{plain_id}"), json!({"subject": "renamed"}))
            .await
            .0,
        200
    );
    assert_eq!(emu.sent().await, (2, 0));

    // Deleting or cancelling a meeting as organizer sends a cancellation;
    // cancel is for meetings only.
    let (_, alone) = emu.post("/events", meeting("alone again", &[])).await;
    refused(
        emu.post(
            &format!("/events/{}/cancel", alone["id"].as_str().unwrap()),
            json!({"comment": "x"}),
        )
        .await,
        400,
        "ErrorInvalidRequest",
    );
    let (s, _) = emu
        .post(&format!("/events/{plain_id}/cancel"), json!({"comment": "sorry"}))
        .await;
    assert_eq!(s, 202);
    refused(emu.get(&format!("/events/{plain_id}")).await, 404, "ErrorItemNotFound");
    assert_eq!(emu.sent().await, (2, 1));
    assert_eq!(emu.delete(&format!("/events/{id}")).await, 204);
    assert_eq!(emu.sent().await, (2, 2));
    // A draft meeting deleted sends nothing.
    let mut draft = meeting("draft", &["bob@example.org"]);
    draft["isDraft"] = json!(true);
    let (_, d) = emu.post("/events", draft).await;
    assert_eq!(emu.delete(&format!("/events/{}", d["id"].as_str().unwrap())).await, 204);
    let stats = emu.stats().await;
    assert_eq!(stats["total"]["invitations_sent"], 2);
    assert_eq!(stats["total"]["cancellations_sent"], 2);
}

#[tokio::test]
async fn weekly_instances_keep_local_time_across_dst_with_exceptions() {
    let emu = Emu::start(&[]).await;
    // Mondays 09:00-10:00 Berlin from 16 March 2026; CEST begins on 29 March.
    let body = json!({
        "subject": "standup",
        "start": {"dateTime": "2026-03-16T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-16T10:00:00", "timeZone": "Europe/Berlin"},
        "attendees": [{"emailAddress": {"address": "bob@example.org"}}],
        "isDraft": true,
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
            "range": {"type": "numbered", "startDate": "2026-03-16", "numberOfOccurrences": 4},
        },
    });
    let (s, master) = emu.post("/events", body).await;
    assert_eq!(s, 201, "{master}");
    assert_eq!(master["type"], "seriesMaster");
    let id = master["id"].as_str().unwrap().to_string();
    let window = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z";
    let (_, inst) = emu.get(&format!("/events/{id}/instances?{window}")).await;
    let starts: Vec<&str> = inst["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-16T08:00:00.0000000",
            "2026-03-23T08:00:00.0000000",
            "2026-03-30T07:00:00.0000000",
            "2026-04-06T07:00:00.0000000"
        ],
        "09:00 Berlin is 08:00 UTC before DST and 07:00 after"
    );
    let (_, local) = emu
        .call(
            Method::GET,
            &format!("/events/{id}/instances?{window}"),
            None,
            Some("outlook.timezone=\"W. Europe Standard Time\""),
        )
        .await;
    assert!(
        local["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["start"]["dateTime"].as_str().unwrap().ends_with("T09:00:00.0000000"))
    );
    let occ: Vec<String> = inst["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        inst["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["seriesMasterId"] == id.as_str() && i["type"] == "occurrence")
    );

    // An occurrence can't be moved onto the day of its neighbour.
    let onto_next = json!({"start": {"dateTime": "2026-03-23T09:00:00", "timeZone": "Europe/Berlin"},
                           "end": {"dateTime": "2026-03-23T10:00:00", "timeZone": "Europe/Berlin"}});
    refused(
        emu.patch(&format!("/events/{}", occ[0]), onto_next).await,
        400,
        "ErrorOccurrenceCrossingBoundary",
    );

    // Cancel the second occurrence, move the third an hour later.
    assert_eq!(emu.delete(&format!("/events/{}", occ[1])).await, 204);
    refused(emu.get(&format!("/events/{}", occ[1])).await, 404, "ErrorItemNotFound");
    let (s, moved) = emu
        .patch(
            &format!("/events/{}", occ[2]),
            json!({"subject": "standup (late)",
                   "start": {"dateTime": "2026-03-30T10:00:00", "timeZone": "Europe/Berlin"},
                   "end": {"dateTime": "2026-03-30T11:00:00", "timeZone": "Europe/Berlin"}}),
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["type"], "exception");
    let (_, inst) = emu.get(&format!("/events/{id}/instances?{window}")).await;
    let v = inst["value"].as_array().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[1]["id"], occ[2].as_str());
    assert_eq!(v[1]["type"], "exception");
    assert_eq!(v[1]["subject"], "standup (late)");
    assert_eq!(v[1]["start"]["dateTime"], "2026-03-30T08:00:00.0000000");
    assert_eq!(v[1]["originalStart"], "2026-03-30T07:00:00Z");

    // calendarView shows the same, plus single events, in start order.
    let single = json!({"subject": "1:1", "start": {"dateTime": "2026-03-20T12:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-20T12:30:00", "timeZone": "UTC"}});
    assert_eq!(emu.post("/events", single).await.0, 201);
    let (_, view) = emu.get(&format!("/calendarView?{window}")).await;
    let subjects: Vec<&str> = view["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["standup", "1:1", "standup (late)", "standup"]);
    refused(emu.get("/calendarView").await, 400, "ErrorInvalidParameter");

    // The admin dump lists the instances in UTC.
    let dump = emu
        .get(&format!(
            "/_emulator/mailboxes/{USER}/pim?start=2026-03-01T00:00:00Z&end=2026-05-01T00:00:00Z"
        ))
        .await
        .1;
    let series = dump["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap();
    assert_eq!(series["instances"].as_array().unwrap().len(), 3);
    assert_eq!(series["start"]["timeZone"], "UTC");
    assert_eq!(series["isDraft"], true);
}

#[tokio::test]
async fn contacts_and_events_share_the_mail_throttling_budget() {
    let emu = Emu::start(&["--rate-limit-requests", "4", "--rate-window-secs", "600"]).await;
    assert_eq!(emu.get("/mailFolders/inbox").await.0, 200);
    assert_eq!(emu.post("/contacts", json!({"givenName": "A"})).await.0, 201);
    assert_eq!(emu.post("/events", meeting("m", &[])).await.0, 201);
    assert_eq!(emu.get("/calendars").await.0, 200);
    // The budget is spent: contacts and events are throttled like mail.
    refused(emu.get("/contacts").await, 429, "ApplicationThrottled");
    refused(
        emu.post("/events", meeting("n", &[])).await,
        429,
        "ApplicationThrottled",
    );
    let stats = emu.stats().await;
    assert_eq!(stats["mailboxes"][USER]["throttled_429"], 2);
    assert_eq!(stats["mailboxes"][USER]["by_kind"]["events.create"], 2);

    // Inside $batch each contact/event request is throttled on its own.
    let other = Emu::start(&["--rate-limit-requests", "2", "--rate-window-secs", "600"]).await;
    let reqs: Vec<Value> = (0..3)
        .map(|i| {
            json!({"id": i.to_string(), "method": "POST", "url": format!("/users/{USER}/contacts"),
                   "headers": {"content-type": "application/json"}, "body": {"givenName": format!("B{i}")}})
        })
        .collect();
    let (s, v) = other.post("/v1.0/$batch", json!({"requests": reqs})).await;
    assert_eq!(s, 200, "{v}");
    let statuses = batch_statuses(&v);
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
}

#[tokio::test]
async fn a_lost_answer_retried_with_its_transaction_id_stays_one_meeting() {
    let emu = Emu::start(&[]).await;
    // The create is carried out, then the connection drops: the client
    // cannot know whether it happened (faults reach the new routes too).
    let faults = json!({"fail_next": [{"drop": "reset_after", "count": 1, "on": "POST /v1.0/users/"}]});
    let r = emu
        .http
        .post(emu.url("/_emulator/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut body = meeting("exactly once", &["bob@example.org"]);
    body["transactionId"] = json!("b1f0c3d2-0000-4000-8000-000000000001");
    let lost = emu
        .http
        .post(emu.url("/events"))
        .bearer_auth(&emu.token)
        .json(&body)
        .send()
        .await;
    assert!(lost.is_err(), "the answer was lost");
    let (s, retried) = emu.post("/events", body).await;
    assert_eq!(s, 201);
    let dump = emu.get(&format!("/_emulator/mailboxes/{USER}/pim")).await.1;
    let events = dump["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], retried["id"]);
    assert_eq!(emu.sent().await, (1, 0));
    assert_eq!(emu.stats().await["total"]["faults_injected"]["reset_after"], 1);
}

#[tokio::test]
async fn an_event_takes_a_large_attachment_through_an_upload_session() {
    let emu = Emu::start(&[]).await;
    // A draft meeting, as the silent flow makes it: an upload sends nothing.
    let mut draft = meeting("big attachment", &["bob@example.org"]);
    draft["isDraft"] = json!(true);
    let (s, created) = emu.post("/events", draft).await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap().to_string();
    let session_path = format!("/events/{id}/attachments/createUploadSession");
    let session = |size: usize| json!({"AttachmentItem": {"attachmentType": "file", "name": "big.pdf", "size": size, "contentType": "application/pdf", "isInline": false}});

    // The same rules as for a message: 3 MB to 150 MB.
    refused(
        emu.post(&session_path, session(1_000_000)).await,
        400,
        "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
    );
    refused(
        emu.post(&session_path, session(150 * 1024 * 1024 + 1)).await,
        400,
        "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
    );

    let size = 5 * 1024 * 1024 + 77;
    let data: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
    let (s, v) = emu.post(&session_path, session(size)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["nextExpectedRanges"], json!(["0-"]));
    let upload_url = v["uploadUrl"].as_str().unwrap().to_string();
    let put = |from: usize, to: usize, auth: bool| {
        let mut rb = emu
            .http
            .put(&upload_url)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("bytes {from}-{to}/{size}"))
            .body(data[from..=to].to_vec());
        if auth {
            rb = rb.bearer_auth(&emu.token);
        }
        rb.send()
    };
    let chunk = 12 * 320 * 1024;
    assert_eq!(
        put(0, chunk - 1, true).await.unwrap().status(),
        401,
        "no token on the upload URL"
    );
    assert_eq!(put(0, 4 * 1024 * 1024, false).await.unwrap().status(), 413, "over 4 MB");
    let r = put(0, chunk - 1, false).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["nextExpectedRanges"], json!([chunk.to_string()]));
    assert_eq!(put(0, chunk - 1, false).await.unwrap().status(), 416, "a repeat");
    let r = put(chunk, size - 1, false).await.unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains(&format!("Events('{id}')/Attachments('")),
        "{location}"
    );
    assert!(r.bytes().await.unwrap().is_empty(), "201 with an empty body");
    // The session ended with the final range.
    assert_eq!(put(chunk, size - 1, false).await.unwrap().status(), 404);

    // Listed on the event with its size (and without bytes when not asked).
    let (s, list) = emu.get(&format!("/events/{id}/attachments?$select=id,name,size")).await;
    assert_eq!(s, 200, "{list}");
    let list = list["value"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "big.pdf");
    assert_eq!(list[0]["size"], size);
    assert!(list[0].get("contentBytes").is_none());
    let aid = list[0]["id"].as_str().unwrap().to_string();
    let (s, got) = emu.get(&format!("/events/{id}/attachments/{aid}")).await;
    assert_eq!(s, 200);
    assert_eq!(got["contentType"], "application/pdf");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["contentBytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, data);
    let (_, ev) = emu.get(&format!("/events/{id}")).await;
    assert_eq!(ev["hasAttachments"], true);
    assert_eq!(emu.sent().await, (0, 0), "nothing sent for a draft's attachment");

    // An id that is no event's is refused before any session is made.
    refused(
        emu.post(
            "/events/AAMkAGUnknownEvent/attachments/createUploadSession",
            session(size),
        )
        .await,
        400,
        "ErrorInvalidIdMalformed",
    );

    // An attachment can be deleted again.
    assert_eq!(emu.delete(&format!("/events/{id}/attachments/{aid}")).await, 204);
    let (_, list) = emu.get(&format!("/events/{id}/attachments")).await;
    assert!(list["value"].as_array().unwrap().is_empty());
    refused(
        emu.get(&format!("/events/{id}/attachments/{aid}")).await,
        404,
        "ErrorItemNotFound",
    );
}
