//! Writing calendars and contacts to a CalDAV/CardDAV server: the one
//! place cutover changes a DAV server. It creates collections under the
//! account's home sets (MKCALENDAR, RFC 4791 §5.3.1; extended MKCOL, RFC
//! 5689), stores items with conditional PUTs so that nothing is written
//! twice or over a change it did not see (`If-None-Match: *` for a new
//! item, `If-Match` for an update), deletes with `If-Match`, and lists a
//! collection's members for verify.
//!
//! Items are stored as given: no scheduling header is added, and CalDAV
//! servers send no invitations for a plain PUT into a calendar collection
//! (scheduling only happens through a schedule outbox or an inbox, RFC
//! 6638, which cutover never writes to).
//!
//! Its own small API for now; a later step puts it behind `Target`.

use reqwest::header::{CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::dav::xml::{self, APPLE_ICAL, CALDAV, CARDDAV, DAV};
use crate::dav::{Collection, CollectionKind, DavClient, Discovery, Member, Scope, classify, same_href};
use crate::error::{Error, Result};

/// How many names `create_collection` tries (`work`, `work-2`, ...) before
/// giving up: more means something else is wrong.
const MAX_NAME_TRIES: usize = 50;

/// The longest path segment cutover makes from a name or UID.
const MAX_SEGMENT_CHARS: usize = 64;

/// Where an item now is on the target, and its ETag for the next
/// conditional update or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub href: String,
    pub etag: Option<String>,
}

/// One account's calendars and address books on a DAV server.
#[derive(Clone, Debug)]
pub struct DavTarget {
    client: DavClient,
    discovery: Discovery,
}

impl DavTarget {
    /// Finds the account's home sets (and its existing collections, see
    /// [`DavTarget::existing`]). Fatal when the login is refused.
    pub async fn open(client: DavClient) -> Result<DavTarget> {
        let discovery = client.discover().await?;
        Ok(DavTarget { client, discovery })
    }

    /// What the account held when it was opened.
    pub fn existing(&self) -> &Discovery {
        &self.discovery
    }

    /// Creates a calendar (for events) or an address book named
    /// `display_name` under the matching home set, at a path segment made
    /// from the name (`-2`, `-3`, ... added when taken).
    pub async fn create_collection(
        &self,
        kind: CollectionKind,
        display_name: &str,
        color: Option<&str>,
        description: Option<&str>,
    ) -> Result<Collection> {
        let home = match kind {
            CollectionKind::Calendar => self.discovery.calendar_home.as_deref(),
            CollectionKind::AddressBook => self.discovery.addressbook_home.as_deref(),
        }
        .ok_or_else(|| {
            Error::fatal(format!(
                "{} has no {} home set on the target server; cannot create {display_name:?}",
                self.client.user(),
                match kind {
                    CollectionKind::Calendar => "calendar",
                    CollectionKind::AddressBook => "address book",
                }
            ))
        })?;
        let base = path_segment(display_name, "collection");
        let body = match kind {
            CollectionKind::Calendar => mkcalendar_body(display_name, color, description),
            CollectionKind::AddressBook => mkcol_addressbook_body(display_name, description),
        };
        let method = match kind {
            CollectionKind::Calendar => Method::from_bytes(b"MKCALENDAR").expect("valid method"),
            CollectionKind::AddressBook => Method::from_bytes(b"MKCOL").expect("valid method"),
        };
        for n in 1..=MAX_NAME_TRIES {
            let segment = if n == 1 { base.clone() } else { format!("{base}-{n}") };
            let href = format!("{}/{segment}/", home.trim_end_matches('/'));
            let what = format!("{method} {href}");
            let answer = self
                .client
                .send(
                    method.clone(),
                    self.client.url(&href)?,
                    &[crate::dav::xml_content_type()],
                    Some(body.clone()),
                    crate::dav::MAX_RESPONSE_BYTES,
                    &what,
                )
                .await?;
            let taken = answer.status == StatusCode::METHOD_NOT_ALLOWED
                || xml::error_condition(&answer.body).as_deref() == Some("resource-must-be-null");
            if answer.status.is_success() {
                return self.client.collection(&href).await;
            }
            if !taken {
                return Err(classify(&answer, Scope::Collection, &what, self.client.user()));
            }
        }
        Err(Error::fatal(format!(
            "cannot find a free name for {display_name:?} under {home}: {base} to {base}-{MAX_NAME_TRIES} are all taken"
        )))
    }

    /// Stores a new item in `collection` at a segment made from its `uid`;
    /// never overwrites (`If-None-Match: *`): when the href is taken the
    /// answer is an item error saying so.
    pub async fn put_new(&self, collection: &Collection, uid: &str, body: &str) -> Result<Stored> {
        let href = format!(
            "{}/{}",
            collection.href.trim_end_matches('/'),
            item_segment(uid, collection.kind)
        );
        self.put(
            &href,
            collection.kind,
            body,
            (IF_NONE_MATCH, HeaderValue::from_static("*")),
        )
        .await
    }

    /// Replaces the item at `href` if it still has `etag` (`If-Match`).
    pub async fn put_update(&self, kind: CollectionKind, href: &str, etag: &str, body: &str) -> Result<Stored> {
        let etag = HeaderValue::from_str(etag)
            .map_err(|_| Error::item(format!("{href}: the stored ETag {etag:?} cannot be sent back")))?;
        self.put(href, kind, body, (IF_MATCH, etag)).await
    }

    /// Deletes the item at `href` if it still has `etag`; an item already
    /// gone counts as deleted.
    pub async fn delete(&self, href: &str, etag: &str) -> Result<()> {
        let etag = HeaderValue::from_str(etag)
            .map_err(|_| Error::item(format!("{href}: the stored ETag {etag:?} cannot be sent back")))?;
        let what = format!("DELETE {href}");
        let answer = self
            .client
            .send(
                Method::DELETE,
                self.client.url(href)?,
                &[(IF_MATCH, etag)],
                None,
                64 * 1024,
                &what,
            )
            .await?;
        match answer.status.as_u16() {
            200 | 202 | 204 | 404 | 410 => Ok(()),
            _ => Err(classify(&answer, Scope::Item, &what, self.client.user())),
        }
    }

    /// The members of a collection with their ETags (for verify).
    pub async fn list(&self, collection: &Collection) -> Result<Vec<Member>> {
        self.client.members(&collection.href).await
    }

    /// The ETag the server now has for `href` (PROPFIND Depth 0), for a PUT
    /// answered without one.
    pub async fn etag_of(&self, href: &str) -> Result<Option<String>> {
        let body = xml::propfind_body(&[(DAV, "getetag")]);
        let answer = self.client.propfind(href, 0, &body, Scope::Item).await?;
        let what = format!("PROPFIND {href}");
        let doc = xml::parse(&answer, &what)?;
        let ms = xml::multistatus(&doc, &what)?;
        Ok(xml::children(ms, DAV, "response")
            .filter(|r| xml::response_href(*r).is_some_and(|h| same_href(&h, href)))
            .find_map(|r| xml::ok_prop_text(r, DAV, "getetag")))
    }

    /// A conditional PUT. A server may store the item altered and then
    /// send no ETag (RFC 4791 §5.3.4); its ETag is then asked for with a
    /// PROPFIND, so [`Stored::etag`] is `None` only when the server keeps
    /// none at all.
    async fn put(
        &self,
        href: &str,
        kind: CollectionKind,
        body: &str,
        condition: (HeaderName, HeaderValue),
    ) -> Result<Stored> {
        let content_type = match kind {
            CollectionKind::Calendar => "text/calendar; charset=utf-8",
            CollectionKind::AddressBook => "text/vcard; charset=utf-8",
        };
        let is_new = condition.0 == IF_NONE_MATCH;
        let what = format!("PUT {href}");
        let answer = self
            .client
            .send(
                Method::PUT,
                self.client.url(href)?,
                &[(CONTENT_TYPE, HeaderValue::from_static(content_type)), condition],
                Some(body.to_owned()),
                64 * 1024,
                &what,
            )
            .await?;
        if answer.status == StatusCode::PRECONDITION_FAILED && is_new {
            return Err(Error::item(format!(
                "{what}: an item already exists at this href on the target (412); it is not overwritten"
            )));
        }
        if !answer.status.is_success() {
            return Err(classify(&answer, Scope::Item, &what, self.client.user()));
        }
        let etag = answer
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let etag = match etag {
            Some(e) => Some(e),
            None => self.etag_of(href).await?,
        };
        Ok(Stored {
            href: href.to_owned(),
            etag,
        })
    }
}

/// A path segment made from a name: lower-case ASCII letters, digits and
/// `-`, at most [`MAX_SEGMENT_CHARS`]; `fallback` when nothing is left
/// (a name in another script).
pub fn path_segment(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= MAX_SEGMENT_CHARS {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        fallback.to_owned()
    } else {
        out.to_owned()
    }
}

/// The file name of an item on the target: its UID where that is a safe
/// path segment, else a hash of the UID (same UID, same name: a retried
/// upload lands on the same href and `If-None-Match` stops a duplicate).
pub fn item_segment(uid: &str, kind: CollectionKind) -> String {
    let extension = match kind {
        CollectionKind::Calendar => "ics",
        CollectionKind::AddressBook => "vcf",
    };
    let safe = !uid.is_empty()
        && uid.len() <= MAX_SEGMENT_CHARS
        && !uid.starts_with('.')
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if safe {
        format!("{uid}.{extension}")
    } else {
        let digest = Sha256::digest(uid.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{hex}.{extension}")
    }
}

fn mkcalendar_body(display_name: &str, color: Option<&str>, description: Option<&str>) -> String {
    let mut props = format!("<D:displayname>{}</D:displayname>", xml::escape(display_name));
    if let Some(color) = color {
        props.push_str(&format!("<I:calendar-color>{}</I:calendar-color>", xml::escape(color)));
    }
    if let Some(description) = description {
        props.push_str(&format!(
            "<C:calendar-description>{}</C:calendar-description>",
            xml::escape(description)
        ));
    }
    props.push_str(
        r#"<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>"#,
    );
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:I="{APPLE_ICAL}"><D:set><D:prop>{props}</D:prop></D:set></C:mkcalendar>"#
    )
}

fn mkcol_addressbook_body(display_name: &str, description: Option<&str>) -> String {
    let mut props = format!(
        "<D:resourcetype><D:collection/><A:addressbook/></D:resourcetype><D:displayname>{}</D:displayname>",
        xml::escape(display_name)
    );
    if let Some(description) = description {
        props.push_str(&format!(
            "<A:addressbook-description>{}</A:addressbook-description>",
            xml::escape(description)
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="{DAV}" xmlns:A="{CARDDAV}"><D:set><D:prop>{props}</D:prop></D:set></D:mkcol>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_segments() {
        assert_eq!(path_segment("Work & Play / 2024", "x"), "work-play-2024");
        assert_eq!(path_segment("日本", "calendar"), "calendar");
        assert_eq!(path_segment("../..", "x"), "x");
    }

    #[test]
    fn unsafe_uids_are_hashed_and_stable() {
        assert_eq!(
            item_segment("abc-123@example.com", CollectionKind::Calendar),
            "abc-123@example.com.ics"
        );
        let odd = item_segment("a/b?c", CollectionKind::AddressBook);
        assert!(odd.ends_with(".vcf") && !odd.contains('/'), "{odd}");
        assert_eq!(odd, item_segment("a/b?c", CollectionKind::AddressBook));
        assert_ne!(item_segment("..", CollectionKind::Calendar), "...ics");
    }
}
