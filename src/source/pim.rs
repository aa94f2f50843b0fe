//! Where a mailbox's contacts and calendars are read from, behind the three
//! calls a migration (and `cutover verify`) makes: [`PimSource::collections`],
//! then per collection [`PimSource::changes`] since what the state DB
//! stored, then [`PimSource::fetch`] of the changed items. A CalDAV/CardDAV
//! server ([`DavSource`]) or the user's `.ics`/`.vcf` files, a Google
//! Takeout export among them ([`FilesSource`]). Both only read.

use std::collections::BTreeMap;

use crate::dav::{Changes, Collection, Discovery, FetchOutcome};
use crate::error::Result;

pub use super::dav::DavSource;
pub use super::pim_files::FilesSource;

/// One user's contacts-and-calendars source, read-only.
#[derive(Debug)]
pub enum PimSource {
    Dav(DavSource),
    Files(FilesSource),
}

impl PimSource {
    /// Every calendar and address book to copy; the first calendar is the
    /// user's primary one (it goes to the target's default calendar)
    /// unless [`Discovery::no_primary_calendar`] says there is none.
    /// Collections left out are in [`Discovery::skipped`], with why.
    pub async fn collections(&self) -> Result<Discovery> {
        match self {
            PimSource::Dav(s) => s.collections().await,
            PimSource::Files(s) => s.collections().await,
        }
    }

    /// What changed in `collection` since `token` was stored with the
    /// versions in `known` (by item key). With no token and nothing known,
    /// every item is listed as changed: a full listing.
    pub async fn changes(
        &self,
        collection: &Collection,
        token: Option<&str>,
        known: &BTreeMap<String, String>,
    ) -> Result<Changes> {
        match self {
            PimSource::Dav(s) => s.changes(collection, token, known).await,
            PimSource::Files(s) => s.changes(collection, known).await,
        }
    }

    /// The items at `keys` (as [`PimSource::changes`] named them), one
    /// outcome each.
    pub async fn fetch(&self, collection: &Collection, keys: &[String]) -> Result<Vec<FetchOutcome>> {
        match self {
            PimSource::Dav(s) => s.fetch(collection, keys).await,
            PimSource::Files(s) => s.fetch(collection, keys).await,
        }
    }
}
