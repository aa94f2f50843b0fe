//! Reading calendars and contacts from a CalDAV/CardDAV server. Strictly
//! read-only, like every source: it only sends PROPFIND, REPORT and GET
//! (through [`crate::dav`]), so a migration never changes the source.
//!
//! The three calls a migration makes, in order: [`DavSource::collections`]
//! (or [`DavSource::collection`] for a URL the admin gave), then per
//! collection [`DavSource::changes`] since the stored sync token and
//! ETags, then [`DavSource::fetch`] of the changed hrefs. Its own small API
//! for now; a later step puts it behind `Source`.

use std::collections::BTreeMap;

use crate::dav::{Changes, Collection, DavClient, Discovery, FetchOutcome};
use crate::error::Result;

/// One account's calendars and address books on a DAV server, read-only.
#[derive(Clone, Debug)]
pub struct DavSource {
    client: DavClient,
}

impl DavSource {
    pub fn new(client: DavClient) -> DavSource {
        DavSource { client }
    }

    /// Every calendar holding events and every address book of the account,
    /// found from the server URL (see [`DavClient::discover`]); collections
    /// left out are in [`Discovery::skipped`] with the reason.
    pub async fn collections(&self) -> Result<Discovery> {
        self.client.discover().await
    }

    /// The one collection at `url` (an admin's direct collection URL).
    pub async fn collection(&self, url: &str) -> Result<Collection> {
        self.client.collection(url).await
    }

    /// What changed in `collection` since `token` was stored with the ETags
    /// in `known` (by href): `sync-collection` where offered, else an ETag
    /// listing compared with `known`; see [`Changes::listed_by`].
    pub async fn changes(
        &self,
        collection: &Collection,
        token: Option<&str>,
        known: &BTreeMap<String, String>,
    ) -> Result<Changes> {
        self.client.changes(collection, token, known).await
    }

    /// The items at `hrefs`, one outcome per href, in bounded batches.
    pub async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> Result<Vec<FetchOutcome>> {
        self.client.fetch(collection, hrefs).await
    }
}
