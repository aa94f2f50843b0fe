//! The CalDAV/CardDAV protocol layer (`cutover::dav`, `source::dav`,
//! `target::dav`) against a real Radicale: discovery, sync-collection and
//! its fallbacks, multiget batches, conditional writes, and the failures an
//! admin must be able to read (wrong password, a server that never
//! answers).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover::dav::{Changes, CollectionKind, DavAuth, DavClient, DavOptions, FetchOutcome, ListedBy};
use cutover::error::ErrorKind;
use cutover::secret::Secret;
use cutover::source::dav::DavSource;
use cutover::target::dav::DavTarget;
use support::listener::Listener;
use support::radicale::{Radicale, contact, event, todo};

const ALICE_PW: &str = "alice-Pw-4711";
const BOB_PW: &str = "bob-Pw-0815";

fn client(server: &Radicale, user: &str, password: &str, options: DavOptions) -> DavClient {
    let auth = DavAuth::Basic {
        user: user.into(),
        password: Secret::new(password),
    };
    DavClient::new(&server.url(), auth, options).expect("client")
}

fn quick() -> DavOptions {
    DavOptions {
        timeout: Duration::from_secs(10),
        ..DavOptions::default()
    }
}

fn sorted_hrefs(changes: &Changes) -> (Vec<String>, Vec<String>) {
    let mut changed: Vec<String> = changes.changed.iter().map(|m| m.href.clone()).collect();
    let mut removed = changes.removed.clone();
    changed.sort();
    removed.sort();
    (changed, removed)
}

fn etags(changes: &Changes) -> BTreeMap<String, String> {
    changes
        .changed
        .iter()
        .map(|m| (m.href.clone(), m.etag.clone().expect("an ETag per member")))
        .collect()
}

#[tokio::test]
async fn discovery_from_the_server_url_finds_the_users_collections_only() {
    let server = Radicale::start(&[("alice", ALICE_PW), ("bob", BOB_PW)]);
    server.mkcalendar("alice", "work", "Work & Travel", &["VEVENT"]);
    server.mkcalendar("alice", "home", "Home", &["VEVENT", "VTODO"]);
    server.mkcalendar("alice", "holidays", "Holidays", &["VEVENT"]);
    server.mkcalendar("alice", "tasks", "Tasks", &["VTODO"]);
    server.put("alice", "/alice/tasks/t1.ics", &todo("t1", "Buy milk"));
    server.mkaddressbook("alice", "contacts", "Contacts");
    server.mkaddressbook("alice", "colleagues", "Colleagues");
    server.mkcalendar("bob", "bobcal", "Bob's", &["VEVENT"]);

    let found = DavSource::new(client(&server, "alice", ALICE_PW, quick()))
        .collections()
        .await
        .expect("discovery");
    let names: Vec<_> = found
        .calendars
        .iter()
        .map(|c| c.display_name.clone().unwrap())
        .collect();
    assert_eq!(names, ["Holidays", "Home", "Work & Travel"]);
    let books: Vec<_> = found.address_books.iter().map(|c| c.href.as_str()).collect();
    assert_eq!(books, ["/alice/colleagues/", "/alice/contacts/"]);
    assert!(
        found
            .address_books
            .iter()
            .all(|b| b.kind == CollectionKind::AddressBook)
    );
    assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
    assert_eq!(found.skipped[0].href, "/alice/tasks/");
    assert!(found.skipped[0].reason.contains("VTODO"), "{}", found.skipped[0].reason);
    assert_eq!(found.calendar_home.as_deref(), Some("/alice/"));
    let work = found.calendars.iter().find(|c| c.href == "/alice/work/").unwrap();
    assert_eq!(work.color.as_deref(), Some("#3366CCFF"));
    assert!(work.supports_sync && work.sync_token.is_some(), "{work:?}");
    assert_eq!(work.components, ["VEVENT"]);
    let every_href = found
        .calendars
        .iter()
        .chain(&found.address_books)
        .map(|c| c.href.as_str());
    assert!(
        every_href.clone().all(|h| h.starts_with("/alice/")),
        "{:?}",
        every_href.collect::<Vec<_>>()
    );

    // A collection URL given directly is described the same way.
    let direct = DavSource::new(client(&server, "alice", ALICE_PW, quick()))
        .collection(&format!("{}alice/contacts/", server.url()))
        .await
        .expect("direct collection");
    assert_eq!(direct.kind, CollectionKind::AddressBook);
    assert_eq!(direct.display_name.as_deref(), Some("Contacts"));
}

/// Three events, listed once; then one edited, one added, one deleted.
/// Returns the collection, the first listing and the expected changes.
async fn three_events_then_changes(
    server: &Radicale,
    dav: &DavClient,
) -> (cutover::dav::Collection, Changes, (Vec<String>, Vec<String>)) {
    server.mkcalendar("alice", "cal", "Calendar", &["VEVENT"]);
    for n in 1..=3 {
        server.put(
            "alice",
            &format!("/alice/cal/e{n}.ics"),
            &event(&format!("e{n}"), "Standup"),
        );
    }
    let cal = dav.collection("/alice/cal/").await.expect("collection");
    let first = dav
        .changes(&cal, None, &BTreeMap::new())
        .await
        .expect("initial listing");
    assert_eq!(
        sorted_hrefs(&first),
        (
            vec![
                "/alice/cal/e1.ics".into(),
                "/alice/cal/e2.ics".into(),
                "/alice/cal/e3.ics".into()
            ],
            vec![]
        )
    );
    server.put("alice", "/alice/cal/e1.ics", &event("e1", "Standup (moved)"));
    server.put("alice", "/alice/cal/e4.ics", &event("e4", "Review"));
    server.delete("alice", "/alice/cal/e3.ics");
    let expected = (
        vec!["/alice/cal/e1.ics".to_owned(), "/alice/cal/e4.ics".to_owned()],
        vec!["/alice/cal/e3.ics".to_owned()],
    );
    (cal, first, expected)
}

#[tokio::test]
async fn sync_collection_returns_only_what_changed_with_a_new_token() {
    let server = Radicale::start(&[("alice", ALICE_PW)]);
    let dav = client(&server, "alice", ALICE_PW, quick());
    let (cal, first, expected) = three_events_then_changes(&server, &dav).await;
    assert_eq!(first.listed_by, ListedBy::SyncCollection);
    let token = first.token.clone().expect("a sync token");

    let next = dav.changes(&cal, Some(&token), &etags(&first)).await.expect("changes");
    assert_eq!(next.listed_by, ListedBy::SyncCollection);
    assert_eq!(sorted_hrefs(&next), expected);
    assert!(
        next.token.as_ref().is_some_and(|t| *t != token),
        "a new token: {next:?}"
    );
    assert!(next.note("/alice/cal/").is_none());

    // Nothing changed since: nothing comes back.
    let idle = dav
        .changes(&cal, next.token.as_deref(), &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(sorted_hrefs(&idle), (vec![], vec![]));
}

#[tokio::test]
async fn an_invalid_sync_token_falls_back_to_a_full_listing_and_says_so() {
    let server = Radicale::start(&[("alice", ALICE_PW)]);
    let dav = client(&server, "alice", ALICE_PW, quick());
    let (cal, first, expected) = three_events_then_changes(&server, &dav).await;
    // Well formed for Radicale, but no token it ever handed out.
    let unknown = format!("http://radicale.org/ns/sync/{}", "0".repeat(64));
    let next = dav
        .changes(&cal, Some(&unknown), &etags(&first))
        .await
        .expect("changes");
    assert_eq!(next.listed_by, ListedBy::FullListingAfterInvalidToken);
    assert_eq!(sorted_hrefs(&next), expected, "compared with the stored ETags");
    assert!(next.token.is_some());
    let note = next.note("/alice/cal/").expect("a note for the log");
    assert!(note.contains("sync token") && note.contains("/alice/cal/"), "{note}");
}

#[tokio::test]
async fn the_etag_listing_finds_the_same_changes_as_sync_collection() {
    let server = Radicale::start(&[("alice", ALICE_PW)]);
    let options = DavOptions {
        sync_collection: false,
        ..quick()
    };
    let dav = client(&server, "alice", ALICE_PW, options);
    let (cal, first, expected) = three_events_then_changes(&server, &dav).await;
    assert_eq!(first.listed_by, ListedBy::EtagListing);
    assert_eq!(first.token, None);
    let next = dav.changes(&cal, None, &etags(&first)).await.expect("changes");
    assert_eq!(next.listed_by, ListedBy::EtagListing);
    assert_eq!(sorted_hrefs(&next), expected);
}

#[tokio::test]
async fn multiget_reads_more_items_than_one_batch_and_reports_a_gone_item() {
    let server = Radicale::start(&[("alice", ALICE_PW)]);
    server.mkaddressbook("alice", "book", "Book");
    // A small batch keeps the test fast (Radicale parses every item it
    // serves); the default batch is the same code with a larger number.
    let options = DavOptions {
        multiget_batch: 8,
        ..quick()
    };
    let count = 8 * 2 + 3;
    for n in 0..count {
        server.put(
            "alice",
            &format!("/alice/book/c{n}.vcf"),
            &contact(&format!("c{n}"), &format!("Person {n}")),
        );
    }
    let source = DavSource::new(client(&server, "alice", ALICE_PW, options));
    let book = source.collection("/alice/book/").await.unwrap();
    let listing = source.changes(&book, None, &BTreeMap::new()).await.unwrap();
    let mut hrefs: Vec<String> = listing.changed.iter().map(|m| m.href.clone()).collect();
    assert_eq!(hrefs.len(), count);
    hrefs.push("/alice/book/never-there.vcf".into());

    let reports_before = server.requests("REPORT", "/alice/book/");
    let outcomes = source.fetch(&book, &hrefs).await.expect("fetch");
    assert_eq!(outcomes.len(), hrefs.len());
    let multigets = server.requests("REPORT", "/alice/book/") - reports_before;
    assert_eq!(multigets, 3, "20 hrefs in batches of 8");
    for (outcome, href) in outcomes.iter().zip(&hrefs) {
        assert_eq!(outcome.href(), href, "outcomes in the order asked");
    }
    let found: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            FetchOutcome::Found(item) => Some(item),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), count);
    for item in &found {
        let n = item.href.trim_start_matches("/alice/book/c").trim_end_matches(".vcf");
        assert!(
            item.body.contains(&format!("FN:Person {n}")),
            "{}: {}",
            item.href,
            item.body
        );
        let listed = listing.changed.iter().find(|m| m.href == item.href).unwrap();
        assert_eq!(item.etag, listed.etag);
    }
    assert_eq!(
        outcomes.last(),
        Some(&FetchOutcome::Gone {
            href: "/alice/book/never-there.vcf".into()
        })
    );
}

#[tokio::test]
async fn the_target_side_creates_writes_updates_and_deletes_and_the_source_side_sees_it() {
    let server = Radicale::start(&[("bob", BOB_PW)]);
    // Radicale makes the principal collection on first access.
    let target = DavTarget::open(client(&server, "bob", BOB_PW, quick()))
        .await
        .expect("open target");
    let cal = target
        .create_collection(
            CollectionKind::Calendar,
            "Work & Travel",
            Some("#FF8800FF"),
            Some("from <old> server"),
        )
        .await
        .expect("MKCALENDAR");
    assert_eq!(cal.href, "/bob/work-travel/");
    assert_eq!(cal.display_name.as_deref(), Some("Work & Travel"));
    assert_eq!(cal.color.as_deref(), Some("#FF8800FF"));
    assert_eq!(cal.description.as_deref(), Some("from <old> server"));
    assert_eq!(cal.components, ["VEVENT"]);
    let again = target
        .create_collection(CollectionKind::Calendar, "Work & Travel", None, None)
        .await
        .expect("a second calendar of the same name");
    assert_eq!(again.href, "/bob/work-travel-2/");
    let book = target
        .create_collection(CollectionKind::AddressBook, "Friends", None, None)
        .await
        .expect("extended MKCOL");
    assert_eq!(book.kind, CollectionKind::AddressBook);

    let a = target
        .put_new(&cal, "evt-a@example.com", &event("evt-a@example.com", "Kickoff"))
        .await
        .unwrap();
    let b = target
        .put_new(&cal, "evt/b?", &event("evt/b?", "Offsite"))
        .await
        .unwrap();
    assert_eq!(a.href, "/bob/work-travel/evt-a@example.com.ics");
    assert!(
        !b.href.trim_start_matches("/bob/work-travel/").contains('/'),
        "{}",
        b.href
    );
    let card = target
        .put_new(&book, "friend-1", &contact("friend-1", "Ann Example"))
        .await
        .unwrap();
    let a_etag = a.etag.clone().expect("an ETag after PUT");
    let a2 = target
        .put_update(
            CollectionKind::Calendar,
            &a.href,
            &a_etag,
            &event("evt-a@example.com", "Kickoff (new room)"),
        )
        .await
        .expect("update");
    assert_ne!(a2.etag.as_deref(), Some(a_etag.as_str()));
    // The old ETag no longer matches: the update is not applied twice.
    let stale = target
        .put_update(
            CollectionKind::Calendar,
            &a.href,
            &a_etag,
            &event("evt-a@example.com", "Lost update"),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::Item);
    assert!(stale.message.contains("changed on the server"), "{}", stale.message);
    target
        .delete(&b.href, b.etag.as_deref().unwrap())
        .await
        .expect("delete");

    let listed = target.list(&cal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].etag, a2.etag);

    let source = DavSource::new(client(&server, "bob", BOB_PW, quick()));
    let found = source.collections().await.unwrap();
    let hrefs: Vec<_> = found.calendars.iter().map(|c| c.href.as_str()).collect();
    assert_eq!(hrefs, ["/bob/work-travel-2/", "/bob/work-travel/"]);
    assert_eq!(found.address_books.len(), 1);
    let read = source.fetch(&cal, &[a.href.clone(), b.href.clone()]).await.unwrap();
    match &read[0] {
        FetchOutcome::Found(item) => assert!(item.body.contains("SUMMARY:Kickoff (new room)"), "{}", item.body),
        other => panic!("{other:?}"),
    }
    assert_eq!(read[1], FetchOutcome::Gone { href: b.href.clone() });
    let cards = source.fetch(&book, std::slice::from_ref(&card.href)).await.unwrap();
    assert!(matches!(&cards[0], FetchOutcome::Found(item) if item.body.contains("FN:Ann Example")));
}

#[tokio::test]
async fn put_new_never_overwrites_an_existing_item() {
    let server = Radicale::start(&[("alice", ALICE_PW)]);
    server.mkcalendar("alice", "cal", "Calendar", &["VEVENT"]);
    server.put("alice", "/alice/cal/same-uid.ics", &event("same-uid", "Original"));
    let target = DavTarget::open(client(&server, "alice", ALICE_PW, quick()))
        .await
        .unwrap();
    let cal = target.existing().calendars[0].clone();
    let err = target
        .put_new(&cal, "same-uid", &event("same-uid", "Overwritten"))
        .await
        .expect_err("If-None-Match: * stops the PUT");
    assert_eq!(err.kind, ErrorKind::Item);
    assert!(
        err.message.contains("/alice/cal/same-uid.ics") && err.message.contains("already exists"),
        "{}",
        err.message
    );
    let stored = server.get("alice", "/alice/cal/same-uid.ics").unwrap();
    assert!(stored.contains("SUMMARY:Original"), "{stored}");
}

#[tokio::test]
async fn a_wrong_password_is_fatal_names_the_user_and_shows_no_password() {
    let server = Radicale::start(&[("alice", ALICE_PW)]);
    let wrong = "Wrong-Secret-Pw-999";
    let dav = client(&server, "alice", wrong, quick());
    let err = dav.discover().await.expect_err("login refused");
    assert_eq!(err.kind, ErrorKind::Fatal, "{err:?}");
    assert!(
        err.message.contains("alice") && err.message.contains("password"),
        "{}",
        err.message
    );
    for shown in [err.message.clone(), format!("{err:?}"), format!("{dav:?}")] {
        assert!(!shown.contains(wrong) && !shown.contains(ALICE_PW), "{shown}");
    }
}

#[tokio::test]
async fn a_silent_server_fails_within_the_deadline() {
    // Accepts connections, reads nothing, answers nothing; counts them.
    fn silent(stream: std::net::TcpStream, seen: Arc<std::sync::atomic::AtomicUsize>) {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(30));
        drop(stream);
    }
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = Listener::spawn(seen.clone(), silent);
    let auth = DavAuth::Basic {
        user: "alice".into(),
        password: Secret::new(ALICE_PW),
    };
    let options = DavOptions {
        timeout: Duration::from_millis(800),
        ..DavOptions::default()
    };
    let dav = DavClient::new(&format!("http://127.0.0.1:{}/", listener.port()), auth, options).unwrap();
    let started = Instant::now();
    let err = dav.discover().await.expect_err("no answer");
    // A read is sent READ_ATTEMPTS times (waiting 1 s, then 2 s, between),
    // each within its deadline: the whole stays bounded.
    let bound = Duration::from_millis(800) * cutover::dav::READ_ATTEMPTS + Duration::from_secs(3 + 4);
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        cutover::dav::READ_ATTEMPTS as usize,
        "each attempt a connection of its own"
    );
    assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
    assert!(err.message.contains("no answer"), "{}", err.message);
    assert!(!err.message.contains(ALICE_PW));
}
