//! What changed in a collection since the last run: the `sync-collection`
//! REPORT (RFC 6578) with the token stored then, or, where a collection
//! does not offer it (or the client is told not to use it), a Depth 1
//! PROPFIND of every member's ETag compared with the ETags stored then.
//! Both give the same [`Changes`], so the caller does not care which ran.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use super::xml::{self, DAV};
use super::{Collection, DavClient, MAX_RESPONSE_BYTES, Scope, classify, normalize_href, path_of, same_href};
use crate::error::{Error, Result};

/// How many truncated (507) sync answers are followed up before giving up:
/// each round returns at least one change, so this bounds a runaway server,
/// not a large collection.
const MAX_SYNC_ROUNDS: usize = 10_000;

/// One member of a collection: its href (path form, as the server sent it)
/// and ETag (quotes kept: the value goes back in If-Match as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub href: String,
    pub etag: Option<String>,
}

/// How the changes were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListedBy {
    /// `sync-collection` with the stored token (or none, the first time).
    SyncCollection,
    /// The stored token was refused (expired or unknown, RFC 6578 §3.2
    /// `valid-sync-token`): the whole collection was listed again and
    /// compared with the stored ETags.
    FullListingAfterInvalidToken,
    /// A Depth 1 PROPFIND of the ETags, compared with the stored ones.
    EtagListing,
    /// A file read again, each item's content hash compared with the
    /// stored one (an `.ics`/`.vcf` source).
    ContentHashes,
}

/// The members added or changed since the last listing, those removed,
/// and what to store for next time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// Added or changed members, by href.
    pub changed: Vec<Member>,
    /// Hrefs of members removed.
    pub removed: Vec<String>,
    /// The token to store for the next run (`None` on the ETag path).
    pub token: Option<String>,
    pub listed_by: ListedBy,
}

impl Changes {
    /// A line for the log saying how the listing was made, when it was not
    /// the ordinary way.
    pub fn note(&self, collection: &str) -> Option<String> {
        match self.listed_by {
            ListedBy::FullListingAfterInvalidToken => Some(format!(
                "{collection}: the server no longer accepts the stored sync token; listed the whole collection and compared ETags instead"
            )),
            _ => None,
        }
    }
}

/// One sync-collection exchange, as the server answered it.
enum SyncAnswer {
    Listed {
        changed: Vec<Member>,
        removed: Vec<String>,
        token: Option<String>,
        truncated: bool,
    },
    InvalidToken,
}

impl DavClient {
    /// What changed in `collection` since `token` was stored, where `known`
    /// holds the ETags stored then, by href. With no token (first run),
    /// every member comes back as changed.
    pub async fn changes(
        &self,
        collection: &Collection,
        token: Option<&str>,
        known: &BTreeMap<String, String>,
    ) -> Result<Changes> {
        if !(self.options.sync_collection && collection.supports_sync) {
            let members = self.members(&collection.href).await?;
            let (changed, removed) = diff_members(known, members);
            return Ok(Changes {
                changed,
                removed,
                token: None,
                listed_by: ListedBy::EtagListing,
            });
        }
        if let Some(token) = token.filter(|t| !t.is_empty())
            && let Some((changed, removed, token)) = self.sync_rounds(&collection.href, Some(token)).await?
        {
            return Ok(Changes {
                changed,
                removed,
                token,
                listed_by: ListedBy::SyncCollection,
            });
        }
        let listed_by = if token.is_some_and(|t| !t.is_empty()) {
            ListedBy::FullListingAfterInvalidToken
        } else {
            ListedBy::SyncCollection
        };
        let Some((members, _, token)) = self.sync_rounds(&collection.href, None).await? else {
            return Err(Error::transient(format!(
                "REPORT {}: the server refused a sync without a token as an invalid token; retrying",
                collection.href
            )));
        };
        let (changed, removed) = diff_members(known, members);
        Ok(Changes {
            changed,
            removed,
            token,
            listed_by,
        })
    }

    /// Every member of a collection with its ETag (PROPFIND Depth 1);
    /// sub-collections are left out.
    pub async fn members(&self, collection: &str) -> Result<Vec<Member>> {
        let body = xml::propfind_body(&[(DAV, "getetag"), (DAV, "resourcetype")]);
        let answer = self.propfind(collection, 1, &body, Scope::Collection).await?;
        let what = format!("PROPFIND {collection}");
        let doc = xml::parse(&answer, &what)?;
        let ms = xml::multistatus(&doc, &what)?;
        let mut out = Vec::new();
        for r in xml::children(ms, DAV, "response") {
            let Some(href) = xml::response_href(r) else {
                return Err(Error::transient(format!(
                    "{what}: a response without an href; retrying"
                )));
            };
            let is_collection =
                xml::ok_prop(r, DAV, "resourcetype").is_some_and(|t| xml::child(t, DAV, "collection").is_some());
            if same_href(&href, collection) || is_collection {
                continue;
            }
            out.push(Member {
                href: path_of(&href),
                etag: xml::ok_prop_text(r, DAV, "getetag"),
            });
        }
        Ok(out)
    }

    /// sync-collection from `token` until the server's answer is complete
    /// (a 507 on the collection means "ask again with the new token", RFC
    /// 6578 §3.6); `None` when the server refuses the token.
    async fn sync_rounds(
        &self,
        collection: &str,
        token: Option<&str>,
    ) -> Result<Option<(Vec<Member>, Vec<String>, Option<String>)>> {
        // Later rounds win: an item changed then removed is removed.
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        let mut token = token.map(str::to_owned);
        for _ in 0..MAX_SYNC_ROUNDS {
            match self.sync_once(collection, token.as_deref()).await? {
                SyncAnswer::InvalidToken => return Ok(None),
                SyncAnswer::Listed {
                    changed,
                    removed,
                    token: next,
                    truncated,
                } => {
                    for m in changed {
                        seen.insert(normalize_href(&m.href), Seen::Changed(m));
                    }
                    for href in removed {
                        seen.insert(normalize_href(&href), Seen::Removed(href));
                    }
                    let progressed = next.is_some() && next != token;
                    token = next;
                    if !truncated {
                        return Ok(Some(split(seen, token)));
                    }
                    if !progressed {
                        return Err(Error::transient(format!(
                            "REPORT {collection}: the server truncated its sync answer without a new token; retrying"
                        )));
                    }
                }
            }
        }
        Err(Error::transient(format!(
            "REPORT {collection}: the server kept truncating its sync answer ({MAX_SYNC_ROUNDS} rounds); retrying"
        )))
    }

    async fn sync_once(&self, collection: &str, token: Option<&str>) -> Result<SyncAnswer> {
        let token_xml = match token {
            Some(t) => format!("<D:sync-token>{}</D:sync-token>", xml::escape(t)),
            None => "<D:sync-token/>".to_owned(),
        };
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">{token_xml}<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
        );
        let what = format!("REPORT sync-collection {collection}");
        let answer = self.report(collection, 0, body, MAX_RESPONSE_BYTES).await?;
        if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::CONFLICT)
            && xml::error_condition(&answer.body).as_deref() == Some("valid-sync-token")
        {
            return Ok(SyncAnswer::InvalidToken);
        }
        if answer.status != StatusCode::MULTI_STATUS {
            return Err(classify(&answer, Scope::Collection, &what, self.user()));
        }
        parse_sync(&answer.body, collection, &what)
    }
}

/// The last word of the sync rounds on one href.
enum Seen {
    Changed(Member),
    Removed(String),
}

fn split(seen: BTreeMap<String, Seen>, token: Option<String>) -> (Vec<Member>, Vec<String>, Option<String>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for entry in seen.into_values() {
        match entry {
            Seen::Changed(m) => changed.push(m),
            Seen::Removed(href) => removed.push(href),
        }
    }
    (changed, removed, token)
}

fn parse_sync(body: &str, collection: &str, what: &str) -> Result<SyncAnswer> {
    let doc = xml::parse(body, what)?;
    let ms = xml::multistatus(&doc, what)?;
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let mut truncated = false;
    for r in xml::children(ms, DAV, "response") {
        let Some(href) = xml::response_href(r) else {
            return Err(Error::transient(format!(
                "{what}: a response without an href; retrying"
            )));
        };
        let status = xml::response_status(r);
        if same_href(&href, collection) {
            truncated |= status == Some(507);
            continue;
        }
        if href.ends_with('/') {
            continue; // a sub-collection: not an item
        }
        match status {
            Some(404) => removed.push(path_of(&href)),
            Some(code) => {
                return Err(Error::transient(format!(
                    "{what}: unexpected status {code} for {href} in the sync answer; retrying"
                )));
            }
            None => changed.push(Member {
                href: path_of(&href),
                etag: xml::ok_prop_text(r, DAV, "getetag"),
            }),
        }
    }
    let token = xml::child(ms, DAV, "sync-token")
        .map(xml::text)
        .filter(|t| !t.is_empty());
    Ok(SyncAnswer::Listed {
        changed,
        removed,
        token,
        truncated,
    })
}

/// Compares a full listing with the ETags stored last time (by href):
/// members new or with another ETag are changed; stored hrefs no longer
/// listed are removed. A member without an ETag counts as changed.
pub fn diff_members(known: &BTreeMap<String, String>, listed: Vec<Member>) -> (Vec<Member>, Vec<String>) {
    let known_by_path: BTreeMap<String, (&String, &String)> = known
        .iter()
        .map(|(href, etag)| (normalize_href(href), (href, etag)))
        .collect();
    let mut listed_paths = std::collections::BTreeSet::new();
    let mut changed = Vec::new();
    for m in listed {
        let path = normalize_href(&m.href);
        let same = match (known_by_path.get(&path), &m.etag) {
            (Some((_, old)), Some(new)) => *old == new,
            _ => false,
        };
        listed_paths.insert(path);
        if !same {
            changed.push(m);
        }
    }
    let removed = known_by_path
        .into_iter()
        .filter(|(path, _)| !listed_paths.contains(path))
        .map(|(_, (href, _))| href.clone())
        .collect();
    (changed, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_diff_finds_added_changed_and_removed() {
        let known: BTreeMap<String, String> = [("/c/a.ics", "\"1\""), ("/c/b.ics", "\"1\""), ("/c/gone.ics", "\"1\"")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let m = |h: &str, e: &str| Member {
            href: h.into(),
            etag: Some(e.into()),
        };
        let (changed, removed) = diff_members(
            &known,
            vec![m("/c/a.ics", "\"1\""), m("/c/b.ics", "\"2\""), m("/c/new.ics", "\"1\"")],
        );
        let hrefs: Vec<_> = changed.iter().map(|m| m.href.as_str()).collect();
        assert_eq!(hrefs, ["/c/b.ics", "/c/new.ics"]);
        assert_eq!(removed, ["/c/gone.ics"]);
    }

    #[test]
    fn a_truncated_sync_answer_is_recognised() {
        let body = r#"<multistatus xmlns="DAV:">
          <response><href>/c/a.ics</href><propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
          <response><href>/c/b.ics</href><status>HTTP/1.1 404 Not Found</status></response>
          <response><href>/c/</href><status>HTTP/1.1 507 Insufficient Storage</status></response>
          <sync-token>tok2</sync-token></multistatus>"#;
        let SyncAnswer::Listed {
            changed,
            removed,
            token,
            truncated,
        } = parse_sync(body, "/c/", "test").unwrap()
        else {
            panic!("listed")
        };
        assert_eq!(changed.len(), 1);
        assert_eq!(removed, ["/c/b.ics"]);
        assert_eq!(token.as_deref(), Some("tok2"));
        assert!(truncated);
    }
}
