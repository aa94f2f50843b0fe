//! Reading items: `calendar-multiget` (RFC 4791 §7.9) and
//! `addressbook-multiget` (RFC 6352 §8.7) in bounded batches. Each href
//! gets its own outcome, so one item the server lost since the listing (a
//! 404 inside the multistatus) or one too large does not fail its batch.

use reqwest::{Method, StatusCode};

use super::xml::{self, CALDAV, CARDDAV, DAV};
use super::{
    Collection, CollectionKind, DavClient, MAX_RESPONSE_BYTES, Scope, classify, normalize_href, path_of,
    xml_content_type,
};
use crate::error::{Error, Result};

/// Hrefs asked for in one multiget: small enough that one answer stays well
/// under [`MAX_RESPONSE_BYTES`] for ordinary items, large enough that a
/// collection of thousands takes tens of requests, not thousands.
pub const MULTIGET_BATCH: usize = 50;

/// The largest item body read (an event with inline attachments, a contact
/// with a large photo). A larger one is an item error naming its href.
pub const MAX_ITEM_BYTES: usize = 8 * 1024 * 1024;

/// One item as read: href (path form), ETag and its iCalendar or vCard text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedItem {
    pub href: String,
    pub etag: Option<String>,
    pub body: String,
}

/// What became of one href asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    Found(FetchedItem),
    /// Deleted on the server since it was listed.
    Gone {
        href: String,
    },
    /// This item could not be read (too large, no data); the others were.
    Failed {
        href: String,
        error: Error,
    },
}

impl FetchOutcome {
    pub fn href(&self) -> &str {
        match self {
            FetchOutcome::Found(item) => &item.href,
            FetchOutcome::Gone { href } | FetchOutcome::Failed { href, .. } => href,
        }
    }
}

impl DavClient {
    /// Reads `hrefs` of `collection`, [`super::DavOptions::multiget_batch`] at a
    /// time ([`MULTIGET_BATCH`] unless set), one
    /// outcome per href in the order asked. A batch whose answer outgrows
    /// [`MAX_RESPONSE_BYTES`] is read again one item at a time by GET.
    pub async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> Result<Vec<FetchOutcome>> {
        let mut out = Vec::with_capacity(hrefs.len());
        for batch in hrefs.chunks(self.options.multiget_batch.max(1)) {
            match self.multiget(collection, batch).await? {
                Some(outcomes) => out.extend(outcomes),
                None => {
                    for href in batch {
                        out.push(self.get_one(href).await?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One multiget; `None` when its answer outgrows [`MAX_RESPONSE_BYTES`].
    async fn multiget(&self, collection: &Collection, batch: &[String]) -> Result<Option<Vec<FetchOutcome>>> {
        let (ns, root, data) = match collection.kind {
            CollectionKind::Calendar => (CALDAV, "calendar-multiget", "calendar-data"),
            CollectionKind::AddressBook => (CARDDAV, "addressbook-multiget", "address-data"),
        };
        let mut body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><R:{root} xmlns:D="DAV:" xmlns:R="{ns}"><D:prop><D:getetag/><R:{data}/></D:prop>"#
        );
        for href in batch {
            body.push_str(&format!("<D:href>{}</D:href>", xml::escape(href)));
        }
        body.push_str(&format!("</R:{root}>"));
        let what = format!("REPORT {root} {}", collection.href);
        let report = Method::from_bytes(b"REPORT").expect("valid method");
        let url = self.url(&collection.href)?;
        // No Depth header: RFC 4791 §7.9 and RFC 6352 §8.7 say not to send one.
        let headers = [xml_content_type()];
        let Some(answer) = self
            .send_capped(report, url, &headers, Some(body), MAX_RESPONSE_BYTES, &what)
            .await?
        else {
            return Ok(None);
        };
        if answer.status != StatusCode::MULTI_STATUS {
            return Err(classify(&answer, Scope::Collection, &what, self.user()));
        }
        let doc = xml::parse(&answer.body, &what)?;
        let ms = xml::multistatus(&doc, &what)?;
        let mut by_path = std::collections::HashMap::new();
        for r in xml::children(ms, DAV, "response") {
            let Some(href) = xml::response_href(r) else {
                return Err(Error::transient(format!(
                    "{what}: a response without an href; retrying"
                )));
            };
            let href = path_of(&href);
            let outcome = match xml::response_status(r) {
                Some(404 | 410) => FetchOutcome::Gone { href: href.clone() },
                Some(code) => FetchOutcome::Failed {
                    href: href.clone(),
                    error: Error::item(format!("{href}: the server answered {code} when asked for it")),
                },
                None => match (xml::ok_prop(r, ns, data), xml::ok_prop_text(r, DAV, "getetag")) {
                    (Some(node), etag) => {
                        let text: String = node
                            .descendants()
                            .filter(|n| n.is_text())
                            .filter_map(|n| n.text())
                            .collect();
                        if text.len() > MAX_ITEM_BYTES {
                            FetchOutcome::Failed {
                                href: href.clone(),
                                error: too_big(&href),
                            }
                        } else if text.trim().is_empty() {
                            FetchOutcome::Failed {
                                href: href.clone(),
                                error: Error::item(format!("{href}: the server sent it without content")),
                            }
                        } else {
                            FetchOutcome::Found(FetchedItem {
                                href: href.clone(),
                                etag,
                                body: text,
                            })
                        }
                    }
                    (None, _) => FetchOutcome::Failed {
                        href: href.clone(),
                        error: Error::item(format!("{href}: the server sent no {data} for it")),
                    },
                },
            };
            by_path.insert(normalize_href(&href), outcome);
        }
        Ok(Some(
            batch
                .iter()
                .map(|href| {
                    by_path
                        .remove(&normalize_href(href))
                        .unwrap_or_else(|| FetchOutcome::Failed {
                            href: href.clone(),
                            error: Error::item(format!("{href}: the server left it out of its multiget answer")),
                        })
                })
                .collect(),
        ))
    }

    /// One item by GET, for a batch too large to read at once.
    async fn get_one(&self, href: &str) -> Result<FetchOutcome> {
        let what = format!("GET {href}");
        let answer = match self
            .send_capped(Method::GET, self.url(href)?, &[], None, MAX_ITEM_BYTES, &what)
            .await
        {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                return Ok(FetchOutcome::Failed {
                    href: href.to_owned(),
                    error: too_big(href),
                });
            }
            Err(e) if e.kind == crate::error::ErrorKind::Item => {
                return Ok(FetchOutcome::Failed {
                    href: href.to_owned(),
                    error: e,
                });
            }
            Err(e) => return Err(e),
        };
        match answer.status.as_u16() {
            200 => Ok(FetchOutcome::Found(FetchedItem {
                href: href.to_owned(),
                etag: answer
                    .headers
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: answer.body,
            })),
            404 | 410 => Ok(FetchOutcome::Gone { href: href.to_owned() }),
            _ => match classify(&answer, Scope::Item, &what, self.user()) {
                e if e.kind == crate::error::ErrorKind::Item => Ok(FetchOutcome::Failed {
                    href: href.to_owned(),
                    error: e,
                }),
                e => Err(e),
            },
        }
    }
}

fn too_big(href: &str) -> Error {
    Error::item(format!(
        "{href}: larger than {} MiB, more than cutover copies; it is left out",
        MAX_ITEM_BYTES / (1024 * 1024)
    ))
}
