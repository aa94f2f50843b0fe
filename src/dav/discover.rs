//! Finding a user's calendars and address books from the server URL an
//! admin knows: `/.well-known/caldav` and `/.well-known/carddav` (RFC 6764
//! §5, redirects followed), the `current-user-principal` (RFC 5397), its
//! `calendar-home-set` (RFC 4791 §6.2.1) and `addressbook-home-set`
//! (RFC 6352 §7.1.1), then a Depth 1 PROPFIND of each home. An admin may
//! instead give one collection's URL ([`DavClient::collection`]).

use reqwest::{Method, StatusCode, Url};

use super::xml::{self, APPLE_ICAL, CALDAV, CALENDARSERVER, CARDDAV, DAV};
use super::{DavClient, MAX_RESPONSE_BYTES, Scope, classify, depth_header, path_of, same_href, xml_content_type};
use crate::error::{Error, Result};

/// How many redirects of a `/.well-known/` URL are followed.
const MAX_REDIRECTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectionKind {
    Calendar,
    AddressBook,
}

/// One calendar or address book, as its PROPFIND describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// The path of the collection on the server, as it sent it.
    pub href: String,
    pub kind: CollectionKind,
    pub display_name: Option<String>,
    /// Apple's `calendar-color` (`#RRGGBB` or `#RRGGBBAA`).
    pub color: Option<String>,
    pub description: Option<String>,
    /// CalendarServer's `getctag`: changes whenever the content does.
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
    /// `sync-collection` is in its `supported-report-set` (RFC 6578 §3.1).
    pub supports_sync: bool,
    /// The component types a calendar holds (`VEVENT`, `VTODO`, ...); empty
    /// when the server does not say (then it holds any) and for address
    /// books.
    pub components: Vec<String>,
}

/// A collection discovery found but that is not migrated, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedCollection {
    pub href: String,
    pub display_name: Option<String>,
    pub reason: String,
}

/// What discovery found for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    pub principal: Option<String>,
    pub calendar_home: Option<String>,
    pub addressbook_home: Option<String>,
    /// Calendars holding events, by href.
    pub calendars: Vec<Collection>,
    /// Address books, by href.
    pub address_books: Vec<Collection>,
    pub skipped: Vec<SkippedCollection>,
    /// None of the calendars is the user's default one (a folder of
    /// `.ics` files none of which is named after the user): each goes to
    /// a calendar of its own name. A DAV server's first calendar is the
    /// default one, so this stays `false` there.
    pub no_primary_calendar: bool,
}

/// What is asked of every collection.
const COLLECTION_PROPS: &[(&str, &str)] = &[
    (DAV, "resourcetype"),
    (DAV, "displayname"),
    (DAV, "sync-token"),
    (DAV, "supported-report-set"),
    (APPLE_ICAL, "calendar-color"),
    (CALDAV, "calendar-description"),
    (CALDAV, "supported-calendar-component-set"),
    (CARDDAV, "addressbook-description"),
    (CALENDARSERVER, "getctag"),
];

impl DavClient {
    /// Finds the account's calendars (those holding events) and address
    /// books; other collections are listed in [`Discovery::skipped`] with a
    /// reason. Failing to log in or being forbidden is fatal and names the
    /// user.
    pub async fn discover(&self) -> Result<Discovery> {
        let mut found = Discovery::default();
        // One principal usually holds both home sets; a server that serves
        // CardDAV elsewhere is asked again through its own well-known URL.
        let context = self.context_path("caldav").await?;
        let principal = self.principal(&context).await?;
        let (cal_homes, mut card_homes) = self.home_sets(&principal).await?;
        if card_homes.is_empty() {
            let context = self.context_path("carddav").await?;
            let card_principal = self.principal(&context).await?;
            if !same_href(&card_principal, &principal) {
                card_homes = self.home_sets(&card_principal).await?.1;
            }
        }
        found.principal = Some(principal);
        found.calendar_home = cal_homes.first().cloned();
        found.addressbook_home = card_homes.first().cloned();
        if found.calendar_home.is_none() && found.addressbook_home.is_none() {
            return Err(Error::fatal(format!(
                "{} has neither a calendar-home-set nor an addressbook-home-set on this server; give the URL of a collection instead",
                self.user()
            )));
        }
        let mut homes: Vec<String> = Vec::new();
        for home in found.calendar_home.iter().chain(found.addressbook_home.iter()) {
            if !homes.iter().any(|h| same_href(h, home)) {
                homes.push(home.clone());
            }
        }
        for home in &homes {
            let body = xml::propfind_body(COLLECTION_PROPS);
            let answer = self.propfind(home, 1, &body, Scope::Discovery).await?;
            let what = format!("PROPFIND {home}");
            for described in parse_collections(&answer, &what)? {
                if same_href(&described.href, home) {
                    continue;
                }
                match described.kind {
                    None => {}
                    Some(kind) => sort_collection(&mut found, described, kind),
                }
            }
        }
        found.calendars.sort_by(|a, b| a.href.cmp(&b.href));
        found.address_books.sort_by(|a, b| a.href.cmp(&b.href));
        Ok(found)
    }

    /// Describes the collection at `href` (a URL the admin gave, or an href
    /// from discovery): fatal when it is missing or is no calendar or
    /// address book.
    pub async fn collection(&self, href: &str) -> Result<Collection> {
        let href = path_of(self.url(href)?.as_str());
        let body = xml::propfind_body(COLLECTION_PROPS);
        let answer = self.propfind(&href, 0, &body, Scope::Collection).await?;
        let what = format!("PROPFIND {href}");
        let described = parse_collections(&answer, &what)?
            .into_iter()
            .find(|c| same_href(&c.href, &href))
            .ok_or_else(|| {
                Error::transient(format!("{what}: the answer does not describe the collection; retrying"))
            })?;
        match described.kind {
            Some(kind) => Ok(described.into_collection(kind)),
            None => Err(Error::fatal(format!(
                "{href} is neither a calendar nor an address book for {}; give a collection URL or the server URL",
                self.user()
            ))),
        }
    }

    /// The context path of a service: where `/.well-known/<service>` leads
    /// (redirects followed), or the configured URL when it leads nowhere.
    async fn context_path(&self, service: &str) -> Result<String> {
        let mut url = self.url(&format!("/.well-known/{service}"))?;
        let body = xml::propfind_body(&[(DAV, "current-user-principal")]);
        for _ in 0..MAX_REDIRECTS {
            let what = format!("PROPFIND {}", url.path());
            let answer = self
                .send(
                    Method::from_bytes(b"PROPFIND").expect("valid method"),
                    url.clone(),
                    &[depth_header(0), xml_content_type()],
                    Some(body.clone()),
                    MAX_RESPONSE_BYTES,
                    &what,
                )
                .await?;
            match answer.status {
                s if s.is_redirection() => {
                    let Some(next) = answer
                        .headers
                        .get(reqwest::header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| url.join(l).ok())
                    else {
                        break;
                    };
                    if !acceptable_redirect(&url, &next) {
                        break;
                    }
                    url = next;
                }
                StatusCode::MULTI_STATUS => return Ok(url.path().to_owned()),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(classify(&answer, Scope::Discovery, &what, self.user()));
                }
                // No well-known URL here (404, 405, ...): RFC 6764 §5 lets
                // the client go on with the URL it has.
                _ => break,
            }
        }
        Ok(self.base.path().to_owned())
    }

    /// The principal URL from `current-user-principal` at `context`, or the
    /// context itself when the server names none (RFC 5397 is optional).
    async fn principal(&self, context: &str) -> Result<String> {
        let body = xml::propfind_body(&[(DAV, "current-user-principal")]);
        let answer = self.propfind(context, 0, &body, Scope::Discovery).await?;
        let what = format!("PROPFIND {context}");
        let doc = xml::parse(&answer, &what)?;
        let ms = xml::multistatus(&doc, &what)?;
        let principal = xml::children(ms, DAV, "response")
            .flat_map(|r| xml::prop_hrefs(r, DAV, "current-user-principal"))
            .next();
        Ok(principal.map(|p| path_of(&p)).unwrap_or_else(|| context.to_owned()))
    }

    /// The calendar and address book home sets of a principal.
    async fn home_sets(&self, principal: &str) -> Result<(Vec<String>, Vec<String>)> {
        let body = xml::propfind_body(&[(CALDAV, "calendar-home-set"), (CARDDAV, "addressbook-home-set")]);
        let answer = self.propfind(principal, 0, &body, Scope::Discovery).await?;
        let what = format!("PROPFIND {principal}");
        let doc = xml::parse(&answer, &what)?;
        let ms = xml::multistatus(&doc, &what)?;
        let mut cal = Vec::new();
        let mut card = Vec::new();
        for r in xml::children(ms, DAV, "response") {
            cal.extend(
                xml::prop_hrefs(r, CALDAV, "calendar-home-set")
                    .iter()
                    .map(|h| path_of(h)),
            );
            card.extend(
                xml::prop_hrefs(r, CARDDAV, "addressbook-home-set")
                    .iter()
                    .map(|h| path_of(h)),
            );
        }
        Ok((cal, card))
    }
}

/// A redirect credentials may follow: to https, or to plain http on the
/// same loopback host.
fn acceptable_redirect(from: &Url, to: &Url) -> bool {
    match to.scheme() {
        "https" => true,
        "http" => from.scheme() == "http" && to.host_str() == from.host_str(),
        _ => false,
    }
}

/// A response of a collection PROPFIND, before it is sorted.
struct Described {
    href: String,
    kind: Option<CollectionKind>,
    display_name: Option<String>,
    color: Option<String>,
    description: Option<String>,
    ctag: Option<String>,
    sync_token: Option<String>,
    supports_sync: bool,
    components: Vec<String>,
}

impl Described {
    fn into_collection(self, kind: CollectionKind) -> Collection {
        Collection {
            href: self.href,
            kind,
            display_name: self.display_name,
            color: self.color,
            description: self.description,
            ctag: self.ctag,
            sync_token: self.sync_token,
            supports_sync: self.supports_sync,
            components: self.components,
        }
    }
}

fn parse_collections(body: &str, what: &str) -> Result<Vec<Described>> {
    let doc = xml::parse(body, what)?;
    let ms = xml::multistatus(&doc, what)?;
    let mut out = Vec::new();
    for r in xml::children(ms, DAV, "response") {
        let Some(href) = xml::response_href(r) else {
            return Err(Error::transient(format!(
                "{what}: a response without an href; retrying"
            )));
        };
        let kind = xml::ok_prop(r, DAV, "resourcetype").and_then(|t| {
            if xml::child(t, CALDAV, "calendar").is_some() {
                Some(CollectionKind::Calendar)
            } else if xml::child(t, CARDDAV, "addressbook").is_some() {
                Some(CollectionKind::AddressBook)
            } else {
                None
            }
        });
        let supports_sync = xml::ok_prop(r, DAV, "supported-report-set")
            .is_some_and(|set| set.descendants().any(|n| xml::is(n, DAV, "sync-collection")));
        let components = xml::ok_prop(r, CALDAV, "supported-calendar-component-set")
            .map(|set| {
                xml::children(set, CALDAV, "comp")
                    .filter_map(|c| c.attribute("name"))
                    .map(|n| n.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default();
        let description = match kind {
            Some(CollectionKind::AddressBook) => xml::ok_prop_text(r, CARDDAV, "addressbook-description"),
            _ => xml::ok_prop_text(r, CALDAV, "calendar-description"),
        };
        out.push(Described {
            href: path_of(&href),
            kind,
            display_name: xml::ok_prop_text(r, DAV, "displayname"),
            color: xml::ok_prop_text(r, APPLE_ICAL, "calendar-color"),
            description,
            ctag: xml::ok_prop_text(r, CALENDARSERVER, "getctag"),
            sync_token: xml::ok_prop_text(r, DAV, "sync-token"),
            supports_sync,
            components,
        });
    }
    Ok(out)
}

/// Files a collection as migrated or skipped: only calendars that may hold
/// events are migrated for now.
fn sort_collection(found: &mut Discovery, described: Described, kind: CollectionKind) {
    match kind {
        CollectionKind::AddressBook => found.address_books.push(described.into_collection(kind)),
        CollectionKind::Calendar => {
            let holds_events = described.components.is_empty() || described.components.iter().any(|c| c == "VEVENT");
            if holds_events {
                found.calendars.push(described.into_collection(kind));
            } else {
                let reason = format!(
                    "holds only {} and no events; only events are migrated",
                    described.components.join(", ")
                );
                found.skipped.push(SkippedCollection {
                    href: described.href,
                    display_name: described.display_name,
                    reason,
                });
            }
        }
    }
}
