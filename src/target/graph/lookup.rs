//! Finding what is already in the target: the copy an earlier attempt
//! stored although its answer was lost, and the inventory `cutover verify`
//! compares with the source.
//!
//! Every finished copy carries cutover's stamp ([`json::Stamp`]), a named
//! extended property holding a digest of the source message's identity,
//! so a lookup by stamp tells apart messages that share a Message-ID or
//! have none. A copy still being made carries the pending form of the
//! stamp and is deleted when found, so that it is made again whole. An
//! importMime cut short before the PATCH that stamps it is unstamped: it is
//! found by its exact bytes (or, on a server that rewrites them, by a
//! Message-ID no other message in the folder has, with the same subject)
//! and finished.
//!
//! The inventory reads, for cutover's copies, the Message-ID and size the
//! source had (from the stamp), and Exchange's own for other messages.

use std::collections::HashSet;

use percent_encoding::utf8_percent_encode;

use super::api::MessagePage;
use super::client::Call;
use super::{GraphSession, QUERY_VALUE, json, parse, seg, stamp_of};
use crate::error::Result;
use crate::model::{Flags, TargetFolder, Upload};
use crate::target::Inventoried;

/// Unstamped messages examined when looking for an interrupted import.
const LOOKUP_CANDIDATES: u32 = 50;
/// Messages listed per page by `inventory`.
const INVENTORY_PAGE: u32 = 500;
/// PR_MESSAGE_SIZE, Exchange's size of an item (not the MIME size).
const MESSAGE_SIZE_PROPERTY: &str = "Integer 0x0E08";

/// A copy of a message found in the target folder.
pub(super) enum Found {
    /// Carries cutover's stamp: finished, nothing more to do.
    Complete(String),
    /// Has no stamp: an import cut short before the PATCH that sets read
    /// state, flag and stamp, which still has to be sent.
    Unfinished(String),
}

impl GraphSession {
    /// `find`: the copy of `message` in `folder` an earlier run made,
    /// finished first if it was cut short.
    pub(super) async fn find_copy(&mut self, folder: &str, message: &Upload) -> Result<Option<String>> {
        let folder = self.current_folder(folder);
        match self.lookup(&folder, message).await? {
            Some(Found::Complete(id)) => Ok(Some(id)),
            Some(Found::Unfinished(id)) => {
                self.finish(&id, message).await?;
                Ok(Some(id))
            }
            None => Ok(None),
        }
    }

    /// `inventory`: the messages of a target folder, by the reference the
    /// checkpoint knows or else by name; none when it does not exist.
    pub(super) async fn inventory_of(
        &mut self,
        folder: &TargetFolder,
        known: Option<&str>,
    ) -> Result<Vec<Inventoried>> {
        if let Some(k) = known {
            let reference = self.current_folder(k);
            if let Some(list) = self.list_folder(&reference).await? {
                return Ok(list);
            }
            // Deleted in Exchange since: look for it by name below.
        }
        match self.existing(folder).await? {
            Some(reference) => Ok(self.list_folder(&reference).await?.unwrap_or_default()),
            None => Ok(Vec::new()),
        }
    }

    /// The id of the copy of `message` that an earlier attempt (or an
    /// interrupted run) stored in `folder`, if there is one.
    ///
    /// First by cutover's stamp (`$filter` on the named extended property
    /// holding the source key), which every finished copy carries and which
    /// tells apart messages sharing a Message-ID or having none. Then, for
    /// an importMime cut short between the import and the PATCH that adds
    /// the stamp: an unstamped message with the same bytes (among those
    /// with the same Message-ID, then among the newest ones), else one
    /// matched by Message-ID and subject, only when no other message in the
    /// folder has that Message-ID.
    pub(super) async fn lookup(&self, folder: &str, message: &Upload) -> Result<Option<Found>> {
        let stamp = stamp_of(message);
        let Some(stamped) = self.stamped(folder, &stamp.key, 1).await? else {
            // The folder is gone, so the message is not there.
            return Ok(None);
        };
        if let Some(id) = stamped.into_iter().next() {
            return Ok(Some(Found::Complete(id)));
        }
        // A json copy whose attachments were still being added: cutover's
        // own and incomplete, so it is replaced.
        for id in self
            .stamped(folder, &json::Stamp::pending(&stamp.key), 10)
            .await?
            .unwrap_or_default()
        {
            tracing::debug!(user = %self.email, "deleting an incomplete copy left by an interrupted run");
            self.discard(&id).await;
        }
        let by_id = message.message_id.as_deref().and_then(json::bracketed_message_id);
        let mut compared: HashSet<String> = HashSet::new();
        // Those sharing the Message-ID first: an unstamped one with exactly
        // these bytes is the copy.
        let mut sharing = None;
        if let Some(id) = &by_id {
            let filter = format!("internetMessageId eq '{}'", id.replace('\'', "''"));
            let Some(page) = self
                .candidates(
                    folder,
                    &format!("$filter={}", utf8_percent_encode(&filter, QUERY_VALUE)),
                )
                .await?
            else {
                return Ok(None);
            };
            if let Some(found) = self.same_bytes(&page, &message.raw, &mut compared).await? {
                return Ok(Some(Found::Unfinished(found)));
            }
            sharing = Some(page);
        }
        // Then the newest unstamped messages, whatever their Message-ID:
        // a message without one, or with several Message-ID headers of
        // which Exchange indexed another than the first.
        let Some(newest) = self.candidates(folder, "$orderby=createdDateTime%20desc").await? else {
            return Ok(None);
        };
        if let Some(found) = self.same_bytes(&newest, &message.raw, &mut compared).await? {
            return Ok(Some(Found::Unfinished(found)));
        }
        // Last, for a server that gives back other bytes than it was sent:
        // the Message-ID alone is not enough (several source messages may
        // share it), so it must be the only message with that Message-ID
        // in the folder, cutover's own copies included, and have this
        // message's subject.
        let Some(sharing) = sharing else {
            return Ok(None);
        };
        let subject = crate::headers::subject(crate::headers::block(&message.raw));
        let only = match sharing.value.as_slice() {
            [only] if only.property(json::KEY_PROPERTY).is_none() => only,
            _ => return Ok(None),
        };
        let same_subject = only.subject.as_deref().and_then(crate::headers::tidy_subject) == subject;
        Ok(same_subject.then(|| Found::Unfinished(only.id.clone())))
    }

    /// Up to [`LOOKUP_CANDIDATES`] messages of `folder` chosen by `query`
    /// (a `$filter` or `$orderby`), with id, Message-ID, subject and stamp;
    /// `None` when the folder does not exist.
    async fn candidates(&self, folder: &str, query: &str) -> Result<Option<MessagePage>> {
        let expand = utf8_percent_encode(
            &format!("singleValueExtendedProperties($filter=id eq '{}')", json::KEY_PROPERTY),
            QUERY_VALUE,
        )
        .to_string();
        let url = format!(
            "{}/mailFolders/{}/messages?{query}&$select=id,internetMessageId,subject&$expand={expand}&$top={LOOKUP_CANDIDATES}",
            self.users,
            seg(folder),
        );
        match self.send(&Call::get(url, "look up unfinished import")).await {
            Ok(reply) => Ok(Some(parse(&reply.body, "look up message")?)),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(None),
            Err(f) => Err(f.error),
        }
    }

    /// The first unstamped message of `page` whose MIME is exactly `raw`
    /// (stamped ones are other source messages' finished copies); each id
    /// is read at most once per lookup.
    async fn same_bytes(
        &self,
        page: &MessagePage,
        raw: &[u8],
        compared: &mut HashSet<String>,
    ) -> Result<Option<String>> {
        for candidate in &page.value {
            if candidate.property(json::KEY_PROPERTY).is_some() || !compared.insert(candidate.id.clone()) {
                continue;
            }
            if self.same_mime(&candidate.id, raw).await? {
                return Ok(Some(candidate.id.clone()));
            }
        }
        Ok(None)
    }

    /// The ids of the messages in `folder` whose stamp is `key` (at most
    /// `top`); `None` when the folder does not exist.
    async fn stamped(&self, folder: &str, key: &str, top: u32) -> Result<Option<Vec<String>>> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{}' and ep/value eq '{key}')",
            json::KEY_PROPERTY,
        );
        let url = format!(
            "{}/mailFolders/{}/messages?$filter={}&$select=id&$top={top}",
            self.users,
            seg(folder),
            utf8_percent_encode(&filter, QUERY_VALUE)
        );
        match self.send(&Call::get(url, "look up message by cutover's key")).await {
            Ok(reply) => Ok(Some(
                parse::<MessagePage>(&reply.body, "look up message")?
                    .value
                    .into_iter()
                    .map(|m| m.id)
                    .collect(),
            )),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(None),
            Err(f) => Err(f.error),
        }
    }

    /// Whether the stored MIME of message `id` is exactly `raw`.
    pub(super) async fn same_mime(&self, id: &str, raw: &[u8]) -> Result<bool> {
        let url = format!("{}/messages/{}/$value", self.users, seg(id));
        match self.send(&Call::get(url, "compare message content")).await {
            Ok(reply) => Ok(reply.body.as_ref() == raw),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(false),
            Err(f) => Err(f.error),
        }
    }

    /// Read-only listing of one folder for `cutover verify`: Message-ID,
    /// size, read state and follow-up flag of every message, page by page. For cutover's copies both
    /// are what the source had (from the stamp); for other messages they
    /// are Exchange's internetMessageId and PR_MESSAGE_SIZE.
    async fn list_folder(&self, reference: &str) -> Result<Option<Vec<Inventoried>>> {
        let expand = format!(
            "singleValueExtendedProperties($filter=id eq '{}' or id eq '{}' or id eq '{MESSAGE_SIZE_PROPERTY}')",
            json::SIZE_PROPERTY,
            json::MESSAGE_ID_PROPERTY,
        );
        let mut url = format!(
            "{}/mailFolders/{}/messages?$select=internetMessageId,isRead,flag&$expand={}&$top={INVENTORY_PAGE}",
            self.users,
            seg(reference),
            utf8_percent_encode(&expand, QUERY_VALUE)
        );
        let mut out = Vec::new();
        loop {
            let page: MessagePage = match self.send(&Call::get(url, "list messages")).await {
                Ok(reply) => parse(&reply.body, "list messages")?,
                Err(f) if f.code == "ErrorItemNotFound" && out.is_empty() => return Ok(None),
                Err(f) => return Err(f.error),
            };
            for m in &page.value {
                let stamped = m.property(json::SIZE_PROPERTY);
                let size = stamped
                    .or_else(|| m.property(MESSAGE_SIZE_PROPERTY))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                // cutover's copies: the Message-ID the source has (none
                // when it has none); anything else: Exchange's.
                let message_id = match stamped {
                    Some(_) => m.property(json::MESSAGE_ID_PROPERTY).map(str::to_owned),
                    None => m.internet_message_id.as_deref().and_then(json::bracketed_message_id),
                };
                // Read state and follow-up flag, as IMAP flags: a flag
                // marked complete is no longer \Flagged.
                let mut flags = Flags::default();
                if m.is_read == Some(true) {
                    flags.0.push("\\Seen".to_owned());
                }
                if m.flag.as_ref().is_some_and(|f| f.flag_status == "flagged") {
                    flags.0.push("\\Flagged".to_owned());
                }
                out.push(Inventoried {
                    message_id,
                    size,
                    id: m.id.clone(),
                    flags,
                });
            }
            match page.next_link {
                Some(next) => url = self.same_origin(next)?,
                None => return Ok(Some(out)),
            }
        }
    }
}
