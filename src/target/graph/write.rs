//! Writing messages into Exchange Online, one of two ways
//! ([`GraphWriteMode`]):
//!
//! - **importMime** (Graph beta): the exact source bytes, stored as a
//!   delivered, non-draft message; read state, flag and categories are then
//!   PATCHed where they differ from what Exchange derived.
//! - **json**: the message re-created from parsed MIME with MAPI properties
//!   for the dates and the non-draft state ([`json`]); large attachments
//!   are added afterwards, through upload sessions above 3 MiB.
//!
//! `auto` uses importMime and, the first time the tenant refuses it (no
//! Mail-Advanced.ReadWrite.All, or no beta endpoint), switches the whole run
//! to json and says so once; a single message importMime refuses is tried
//! as json too.
//!
//! Exactly once: a create that failed in a way that may have stored the
//! message anyway (timeout, reset, 5xx) is looked up ([`super::lookup`])
//! before it is sent again. The stamp is set in the json create request or
//! in the PATCH that follows an import, and only once the copy is complete;
//! a message whose follow-up steps failed (PATCH, attachments) is deleted
//! before the error is reported, so a retry never leaves a half-made copy
//! behind.
//!
//! A resync's flag changes ([`GraphSession::set_flags`]) are one PATCH of
//! the same read state, flag and categories, mapped as an upload maps them.
//! A copy filed elsewhere is moved ([`GraphSession::move_copy`]: `POST
//! .../move`, which gives it a new id), one deleted on the source is
//! deleted ([`GraphSession::delete_copy`]).
//!
//! The upload-session path ([`Uploads`]) is not the messages' alone:
//! Graph takes attachments of 3 MB to 150 MB on events through the same
//! `createUploadSession` and ranges, so [`super::pim`] sends an event's
//! large attachments through it too, with the event's URL as the parent.
//!
//! A move is not safe to send twice blindly: once Exchange moved the
//! message its old id is gone, so a move whose answer was lost is checked
//! (is the old id still there?) before it is sent again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use reqwest::Method;

use super::api::{self, AttachmentPage, CreatedMessage, ListedAttachment, MessagePatch, UploadSession};
use super::client::{Body, Call, Reply};
use super::config::GraphWriteMode;
use super::failure::{Failure, mailbox_missing};
use super::lookup::Found;
use super::{GraphSession, Inner, Mailbox, json, parse, seg, stamp_of};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Flags, Upload};

/// Upload-session ranges: a multiple of 320 KiB, at most 4 MiB.
const CHUNK_BYTES: usize = 12 * 320 * 1024;
/// Messages above this size are base64-encoded or converted off the async
/// threads.
const BLOCKING_ABOVE: usize = 1024 * 1024;

/// The answer to a create that may have been retried.
enum Created {
    /// Created now; the answer's body.
    New(Bytes),
    /// An earlier attempt had stored it after all.
    Existing(Found),
}

impl GraphSession {
    /// `upload_many`: the messages of a batch written several at once, as
    /// many as the mailbox may have requests in flight (its limits hold back
    /// the rest), so that one source connection keeps a mailbox at its
    /// budget; one at a time, a mailbox gets one request per round trip,
    /// and with hundreds of mailboxes sharing the source's connection cap,
    /// that is all most of them get. Results come in order, one for every
    /// message. A message whose folder was deleted in Exchange meanwhile is
    /// written again on its own, the folder made again first.
    pub(super) async fn upload_all(&mut self, folder: &str, messages: &[Upload]) -> Vec<Result<String>> {
        let current = self.current_folder(folder);
        let width = self.inner.settings.max_concurrent_requests.max(1);
        let this = &*self;
        let writes: Vec<_> = messages
            .iter()
            .map(|message| this.write(&current, message).boxed())
            .collect();
        let written: Vec<std::result::Result<String, Failure>> =
            futures::stream::iter(writes).buffered(width).collect().await;
        let mut results = Vec::with_capacity(messages.len());
        for (message, result) in messages.iter().zip(written) {
            results.push(match result {
                Ok(id) => Ok(id),
                Err(f) if f.code == "ErrorItemNotFound" => self.upload_to(folder, message).await,
                Err(f) => Err(f.error),
            });
        }
        results
    }

    /// `upload`: writes `message` into `folder`, making the folder again
    /// (once) if it was deleted in Exchange since it was made.
    pub(super) async fn upload_to(&mut self, folder: &str, message: &Upload) -> Result<String> {
        let mut folder = self.current_folder(folder);
        let mut recreated = false;
        loop {
            match self.write(&folder, message).await {
                Ok(id) => return Ok(id),
                // The folder was deleted in Exchange since it was made.
                Err(f) if f.code == "ErrorItemNotFound" && !recreated => match self.recreate_folder(&folder).await? {
                    Some(fresh) => {
                        folder = fresh;
                        recreated = true;
                    }
                    None => return Err(f.error),
                },
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Writes one message with the mode in force.
    async fn write(&self, folder: &str, message: &Upload) -> std::result::Result<String, Failure> {
        if self.inner.json_now() {
            return self.write_json(folder, message).await;
        }
        // One importMime request carries the whole message, base64: larger
        // than the mailbox's upload budget for a window (150 MB per 5
        // minutes), Exchange throttles it every time. json sends it in
        // pieces (attachments through upload sessions of 4 MiB ranges).
        let request_bytes = (message.raw.len() as u64).div_ceil(3) * 4;
        if request_bytes > u64::from(self.inner.settings.upload_bytes_per_5_minutes) {
            tracing::info!(
                user = %self.email,
                message = %message.key,
                "the message is too large for one importMime request within the upload budget ({request_bytes} bytes base64, {} per window): copying it as JSON",
                self.inner.settings.upload_bytes_per_5_minutes
            );
            let id = self.write_json(folder, message).await?;
            self.note_conversion((
                message.key.clone(),
                format!(
                    "too large for one importMime request within Exchange's upload budget ({} bytes per 5 minutes): copied as JSON (body, headers and attachments kept; not byte-identical)",
                    self.inner.settings.upload_bytes_per_5_minutes
                ),
            ));
            return Ok(id);
        }
        let auto = self.inner.settings.write_mode == GraphWriteMode::Auto;
        match self.write_mime(folder, message).await {
            Ok(id) => Ok(id),
            Err(f) if import_unavailable(&f) && auto => {
                self.inner.fall_back_to_json(&f);
                self.write_json(folder, message).await
            }
            Err(f) if f.status == Some(403) => Err(Failure::plain(Error::fatal(format!(
                "{}; importMime needs the application permission Mail-Advanced.ReadWrite.All: grant it with admin consent, or set [target] write_mode = \"auto\" or \"json\"",
                f.error
            )))),
            // importMime refused this one message (bad MIME, over its size
            // limit): json may still take it, with attachments split off.
            Err(f)
                if auto
                    && matches!(f.error.kind, ErrorKind::Item | ErrorKind::Refused)
                    && f.code != "ErrorItemNotFound" =>
            {
                tracing::info!(user = %self.email, "importMime refused a message ({}); copying it as JSON instead", f.error);
                self.write_json(folder, message).await.map_err(|mut j| {
                    j.error.message = format!(
                        "{} (importMime had refused it too: {})",
                        j.error.message, f.error.message
                    );
                    j
                })
            }
            Err(f) => Err(f),
        }
    }

    async fn write_mime(&self, folder: &str, message: &Upload) -> std::result::Result<String, Failure> {
        let encoded = encode_base64(message.raw.clone()).await;
        let url = format!("{}/mailFolders/{}/importMime", self.beta_users, seg(folder));
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Base64Mime(encoded),
            what: "import message",
            authorized: true,
            idempotent: false,
        };
        let (id, state) = match self.create(&call, folder, message).await? {
            Created::New(body) => {
                let created: CreatedMessage = parse(&body, "import message").map_err(Failure::plain)?;
                (created.id.clone(), Some(created))
            }
            Created::Existing(Found::Complete(id)) => return Ok(id),
            Created::Existing(Found::Unfinished(id)) => (id, None),
        };
        // Always sent: besides read state and flag it carries the stamp
        // that lets a later run find this message (importMime takes no
        // properties, and the MIME is not to be rewritten).
        let mut patch = state_patch(
            &crate::transform::flags_with_labels(&message.flags, &message.labels),
            state.as_ref(),
        );
        patch.single_value_extended_properties = Some(stamp_of(message).properties());
        if let Err(e) = self.patch(&id, &patch).await {
            self.discard(&id).await;
            return Err(Failure::plain(e));
        }
        if let Some(created) = &state {
            self.check_received_date(created, message);
        }
        Ok(id)
    }

    async fn write_json(&self, folder: &str, message: &Upload) -> std::result::Result<String, Failure> {
        let built = build_json(message)
            .await
            .map_err(|e| Failure::plain(Error::item(format!("cannot convert the message to Graph JSON: {e}"))))?;
        let url = format!("{}/mailFolders/{}/messages", self.users, seg(folder));
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Json(built.request.into()),
            what: "create message",
            authorized: true,
            idempotent: false,
        };
        if built.cut_to_fit {
            tracing::warn!(
                user = %self.email,
                message = %message.key,
                "the message's body or header block is too large for one Graph request: it is created with them cut short and its complete original attached as {}",
                json::ORIGINAL_NAME
            );
        }
        let id = match self.create(&call, folder, message).await? {
            Created::New(body) => {
                parse::<api::IdOnly>(&body, "create message")
                    .map_err(Failure::plain)?
                    .id
            }
            // Found rather than made: a finished copy (a pending one is
            // deleted by the lookup and never found).
            Created::Existing(Found::Complete(id)) => return Ok(id),
            Created::Existing(Found::Unfinished(id)) => {
                self.finish(&id, message).await.map_err(Failure::plain)?;
                return Ok(id);
            }
        };
        if built.deferred.is_empty() {
            return Ok(id);
        }
        for attachment in built.deferred {
            if let Err(e) = self.add_attachment(&id, attachment).await {
                self.discard(&id).await;
                return Err(Failure::plain(e));
            }
        }
        // Complete now: the final stamp replaces the pending one.
        let patch = MessagePatch {
            single_value_extended_properties: Some(stamp_of(message).properties()),
            ..MessagePatch::default()
        };
        if let Err(e) = self.patch(&id, &patch).await {
            self.discard(&id).await;
            return Err(Failure::plain(e));
        }
        if built.cut_to_fit {
            self.note_conversion((
                message.key.clone(),
                format!(
                    "its body or header block was too large for one Graph request (4 MB): the item holds them cut short, with the complete original attached as {}",
                    json::ORIGINAL_NAME
                ),
            ));
        }
        Ok(id)
    }

    /// Completes a copy found unstamped (an import cut short before its
    /// PATCH): read state, flag, categories and stamp.
    pub(super) async fn finish(&self, id: &str, message: &Upload) -> Result<()> {
        let mut patch = state_patch(
            &crate::transform::flags_with_labels(&message.flags, &message.labels),
            None,
        );
        patch.single_value_extended_properties = Some(stamp_of(message).properties());
        self.patch(id, &patch).await
    }

    /// Sends a create; after a failure that may have stored the message
    /// anyway, waits, then looks it up before sending again.
    ///
    /// The wait comes first: a create whose answer timed out may still be
    /// committed by Exchange moments later, and a lookup made at once would
    /// miss it and send the message a second time.
    async fn create(&self, call: &Call<'_>, folder: &str, message: &Upload) -> std::result::Result<Created, Failure> {
        let mut attempt = 0;
        loop {
            let f = match self.send(call).await {
                Ok(reply) => return Ok(Created::New(reply.body)),
                Err(f) if f.maybe_applied && f.error.is_retryable() => f,
                Err(f) => return Err(f),
            };
            attempt += 1;
            let Some(delay) = self.inner.http.retry.delay(attempt, &f.error) else {
                // Attempts spent: the message fails, and is looked up
                // before the next run sends it again.
                return Err(f);
            };
            // The gate already holds everyone back for a throttle.
            if !matches!(f.error.kind, ErrorKind::Throttled(_)) {
                tokio::time::sleep(delay.max(LATE_COMMIT_WAIT)).await;
            }
            if let Some(found) = self.lookup(folder, message).await.map_err(Failure::plain)? {
                tracing::debug!(user = %self.email, "an interrupted create had stored the message; using it");
                return Ok(Created::Existing(found));
            }
        }
    }

    async fn patch(&self, id: &str, patch: &MessagePatch) -> Result<()> {
        self.send_patch(id, patch).await?;
        Ok(())
    }

    async fn send_patch(&self, id: &str, patch: &MessagePatch) -> std::result::Result<(), Failure> {
        let url = format!("{}/messages/{}", self.users, seg(id));
        let body = serde_json::to_vec(patch).expect("serializes");
        let call = Call {
            method: Method::PATCH,
            url,
            body: Body::Json(body.into()),
            what: "set read state, flag and categories",
            authorized: true,
            idempotent: true,
        };
        self.send(&call).await?;
        Ok(())
    }

    /// `update_flags`: the copy's read state, follow-up flag and
    /// categories set to what an upload with these marks sets, replacing
    /// what it had (categories the marks do not carry are removed). The id
    /// stays the same; a copy Exchange no longer has under it (deleted, or
    /// moved to another folder, which gives it a new id) is an item error.
    pub(super) async fn set_flags(&self, id: &str, flags: &Flags, labels: &[String]) -> Result<String> {
        let patch = replacing_patch(&crate::transform::flags_with_labels(flags, labels));
        match self.send_patch(id, &patch).await {
            Ok(()) => Ok(id.to_owned()),
            Err(f) if f.code == "ErrorItemNotFound" => Err(Error::item(format!(
                "the copy's flags cannot be changed: the mailbox no longer has it under its id (deleted, or moved to another folder since it was stored): {}",
                f.error.message
            ))),
            Err(f) => Err(f.error),
        }
    }

    /// Deletes a half-made copy; a failure only leaves it behind, which is
    /// logged.
    pub(super) async fn discard(&self, id: &str) {
        let url = format!("{}/messages/{}", self.users, seg(id));
        let call = Call::delete(url, "delete incomplete copy");
        if let Err(f) = self.send(&call).await
            && f.status != Some(404)
        {
            tracing::warn!(user = %self.email, "an incomplete copy of a message could not be deleted and may remain in the target folder: {}", f.error);
        }
    }

    /// `move_message`: `POST /messages/{id}/move` into `to`; returns the id
    /// Exchange gives the moved message. A 404 is the message gone, unless
    /// the destination is what is gone (deleted in Exchange since it was
    /// made): then the folder is made again, once, as for an upload. A
    /// move whose answer was lost is checked before it is sent again: an
    /// old id that is gone means Exchange moved it, and the new id is not
    /// known (an empty id, as `upload` gives where it cannot tell).
    pub(super) async fn move_copy(&mut self, id: &str, to: &str) -> Result<String> {
        const WHAT: &str = "the copy cannot be moved";
        if id.is_empty() {
            return Err(Error::item(format!("{WHAT}: it has no Graph id")));
        }
        let mut to = self.current_folder(to);
        let mut recreated = false;
        let mut attempt = 0;
        loop {
            let body = serde_json::to_vec(&api::MoveTo { destination_id: &to }).expect("serializes");
            let call = Call {
                method: Method::POST,
                url: format!("{}/messages/{}/move", self.users, seg(id)),
                body: Body::Json(body.into()),
                what: "move message",
                authorized: true,
                idempotent: false,
            };
            let f = match self.send(&call).await {
                Ok(reply) => return Ok(parse::<api::IdOnly>(&reply.body, "move message")?.id),
                Err(f) => f,
            };
            if f.code == "ErrorItemNotFound" {
                if !recreated
                    && !self.folder_exists(&to).await?
                    && let Some(fresh) = self.recreate_folder(&to).await?
                {
                    to = fresh;
                    recreated = true;
                    continue;
                }
                return Err(Error::item(format!(
                    "{WHAT}: the mailbox no longer has it under its id (deleted, or moved to another folder since it was stored): {}",
                    f.error.message
                )));
            }
            if !(f.maybe_applied && f.error.is_retryable()) {
                return Err(f.error);
            }
            attempt += 1;
            let Some(delay) = self.inner.http.retry.delay(attempt, &f.error) else {
                return Err(f.error);
            };
            if !matches!(f.error.kind, ErrorKind::Throttled(_)) {
                tokio::time::sleep(delay.max(LATE_COMMIT_WAIT)).await;
            }
            if !self.message_exists(id).await? {
                tracing::debug!(user = %self.email, "a move whose answer was lost had been done; the new id is not known");
                return Ok(String::new());
            }
        }
    }

    /// Whether the mailbox still has a message under `id`.
    async fn message_exists(&self, id: &str) -> Result<bool> {
        let url = format!("{}/messages/{}?$select=id", self.users, seg(id));
        match self.send(&Call::get(url, "look up message")).await {
            Ok(_) => Ok(true),
            Err(f) if f.code == "ErrorItemNotFound" => Ok(false),
            Err(f) => Err(f.error),
        }
    }

    /// `delete_message`: `DELETE /messages/{id}` (Exchange keeps it in
    /// Recoverable Items); a 404 is a copy already gone, which is what was
    /// wanted.
    pub(super) async fn delete_copy(&self, id: &str) -> Result<()> {
        if id.is_empty() {
            return Err(Error::item("the copy cannot be deleted: it has no Graph id"));
        }
        let call = Call::delete(format!("{}/messages/{}", self.users, seg(id)), "delete message");
        match self.send(&call).await {
            Ok(_) => Ok(()),
            Err(f) if f.status == Some(404) && f.code == "ErrorItemNotFound" => Ok(()),
            Err(f) => Err(f.error),
        }
    }

    async fn add_attachment(&self, message_id: &str, attachment: json::Attachment) -> Result<()> {
        let what = format!("add attachment {}", attachment.name);
        let small = attachment.bytes.len() <= json::ATTACHMENT_INLINE_MAX;
        let body = if small { Some(attachment.to_json()) } else { None };
        if let Some(body) = body.filter(|b| b.len() < json::REQUEST_MAX) {
            let url = format!("{}/messages/{}/attachments", self.users, seg(message_id));
            let call = Call {
                method: Method::POST,
                url,
                body: Body::Json(body.into()),
                what: &what,
                authorized: true,
                idempotent: false,
            };
            self.send(&call).await?;
            return Ok(());
        }
        let large = LargeAttachment {
            name: &attachment.name,
            content_type: &attachment.content_type,
            is_inline: attachment.is_inline,
            content_id: attachment.content_id.as_deref(),
            data: Bytes::from(attachment.bytes),
        };
        self.uploads()
            .upload_session(&self.message_url(message_id), large, &what)
            .await
    }

    /// The upload path for this session's mailbox.
    fn uploads(&self) -> Uploads<'_> {
        Uploads {
            inner: &self.inner,
            mailbox: &self.mailbox,
            email: &self.email,
        }
    }

    /// `{users}/messages/{id}`: the parent of a message's attachments.
    fn message_url(&self, message_id: &str) -> String {
        format!("{}/messages/{}", self.users, seg(message_id))
    }

    /// The message's attachments: id, name and size.
    pub(super) async fn attachments_of(&self, message_id: &str, what: &str) -> Result<Vec<ListedAttachment>> {
        self.uploads().attachments_of(&self.message_url(message_id), what).await
    }

    /// importMime has no documented rule for the received date. If it did
    /// not keep INTERNALDATE, say so once: the admin may prefer json.
    fn check_received_date(&self, created: &CreatedMessage, message: &Upload) {
        let Some(received) = created
            .received_date_time
            .as_deref()
            .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok())
        else {
            return;
        };
        if message.internal_date > 0
            && (received.timestamp() - message.internal_date).abs() > 86_400
            && !self.inner.warned_dates.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                user = %self.email,
                "importMime stored a received date ({received}) that is not the source's INTERNALDATE; Outlook sorts by received date. If that matters, set [target] write_mode = \"json\", which sets the received date explicitly"
            );
        }
    }
}

/// A file attachment too large for one request (over 3 MB), for an upload
/// session.
pub(super) struct LargeAttachment<'a> {
    pub name: &'a str,
    pub content_type: &'a str,
    pub is_inline: bool,
    pub content_id: Option<&'a str>,
    pub data: Bytes,
}

/// Largest attachment an upload session takes, on a message or an event
/// (outlook-large-attachments: 150 MB).
pub(super) const MAX_UPLOAD_SESSION: usize = 150 * 1024 * 1024;

/// The upload-session path, for a message or an event alike: Graph's
/// `createUploadSession` and its ranges are the same for both, only the
/// parent item's URL differs (`{users}/messages/{id}` or
/// `{users}/events/{id}`). Sent on the mailbox's own limits, so uploads
/// count against its budget whichever session makes them.
pub(super) struct Uploads<'a> {
    pub inner: &'a Inner,
    pub mailbox: &'a Mailbox,
    /// The mailbox's address, for the log.
    pub email: &'a str,
}

impl Uploads<'_> {
    async fn send(&self, call: &Call<'_>) -> std::result::Result<Reply, Failure> {
        self.inner.http.send(&self.mailbox.limits, call).await
    }

    /// A paging link, refused unless it points back at the configured
    /// endpoint: the token must not go anywhere else.
    fn same_origin(&self, link: String) -> Result<String> {
        if link.starts_with(&format!("{}/", self.inner.settings.endpoint)) {
            Ok(link)
        } else {
            Err(Error::fatal(format!(
                "Graph answered with a paging link outside {} ; refusing to send the app's token there (check [target] endpoint)",
                self.inner.settings.endpoint
            )))
        }
    }

    /// Large attachments: an upload session, then the bytes in sequential
    /// ranges sent to the session's URL without the Graph token (the URL
    /// carries its own credential).
    ///
    /// A range's answer can be lost after Exchange took it (a dropped
    /// connection, an answer later than the timeout). The client sends the
    /// range again, and Exchange refuses the repeat: it expects the next
    /// range (416), or the session ended with the final one (404). Graph
    /// documents no way to ask an Outlook upload session how far it got
    /// (`nextExpectedRanges` comes only in the answers), so the item's
    /// attachments are read instead: the attachment is there (done), or it
    /// is not and a new session sends it again, at most
    /// [`UPLOAD_SESSIONS`] times. Attachments that appeared during the
    /// upload are told apart from those the item had before by their ids;
    /// one cut short or made twice is deleted. This keeps the copy instead
    /// of deleting the item and creating it again.
    pub(super) async fn upload_session(&self, parent: &str, attachment: LargeAttachment<'_>, what: &str) -> Result<()> {
        let total = attachment.data.len();
        let request = api::UploadSessionRequest {
            attachment_item: api::AttachmentItem {
                attachment_type: "file",
                name: attachment.name,
                size: total as u64,
                content_type: attachment.content_type,
                is_inline: attachment.is_inline,
                content_id: attachment.content_id,
            },
        };
        let request = Bytes::from(serde_json::to_vec(&request).expect("serializes"));
        // What the item had before, so that what this upload added can be
        // told apart from an earlier attachment of the same name.
        let before: Vec<String> = self
            .attachments_of(parent, what)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let data = attachment.data;
        let mut sessions = 0;
        loop {
            sessions += 1;
            let lost = match self.send_ranges(parent, &request, &data, what).await? {
                None if sessions == 1 => return Ok(()),
                // Sent whole after a lost answer: an earlier session may
                // have completed it too, late.
                None => {
                    self.settle_attachment(parent, attachment.name, total, &before, what)
                        .await?;
                    return Ok(());
                }
                Some(lost) => lost,
            };
            tracing::debug!(user = %self.email, sessions, "an upload range's answer was lost; checking the attachments: {}", lost.error);
            // As after a create: time for a late commit to become visible.
            tokio::time::sleep(LATE_COMMIT_WAIT).await;
            if self
                .settle_attachment(parent, attachment.name, total, &before, what)
                .await?
            {
                return Ok(());
            }
            if sessions >= UPLOAD_SESSIONS {
                return Err(Error::transient(format!(
                    "{what}: the upload's outcome stayed unknown through {UPLOAD_SESSIONS} upload sessions ({}); retrying",
                    lost.error.message
                )));
            }
        }
    }

    /// One upload session: creates it and sends every range. `None` once
    /// the final range is acknowledged; the failure when a range is
    /// refused in the way a repeat of an already taken range is (416), or
    /// the session is gone (404) or in conflict (409).
    async fn send_ranges(&self, parent: &str, request: &Bytes, data: &Bytes, what: &str) -> Result<Option<Failure>> {
        let url = format!("{parent}/attachments/createUploadSession");
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Json(request.clone()),
            what,
            authorized: true,
            idempotent: false,
        };
        let reply = self.send(&call).await?;
        let session: UploadSession = parse(&reply.body, what)?;
        check_upload_url(&session.upload_url).map_err(|e| e.context(what))?;
        let total = data.len();
        let mut start = 0;
        while start < total {
            let end = (start + CHUNK_BYTES).min(total);
            let range = format!("bytes {}-{}/{}", start, end - 1, total);
            // Idempotent: the client repeats a range after a 5xx, a 429 or
            // a lost answer, each within its own deadline.
            let call = Call {
                method: Method::PUT,
                url: session.upload_url.clone(),
                body: Body::Chunk {
                    data: data.slice(start..end),
                    range,
                },
                what,
                authorized: false,
                idempotent: true,
            };
            match self.send(&call).await {
                Ok(_) => start = end,
                Err(f) if matches!(f.status, Some(404 | 409 | 416)) => return Ok(Some(f)),
                Err(f) => return Err(f.error),
            }
        }
        Ok(None)
    }

    /// After a lost answer: whether the attachment `name` of `size` bytes
    /// is on the item now, among the attachments not in `before`. One
    /// whole copy is kept; others of that name added meanwhile (cut short,
    /// or made twice) are deleted.
    async fn settle_attachment(
        &self,
        parent: &str,
        name: &str,
        size: usize,
        before: &[String],
        what: &str,
    ) -> Result<bool> {
        let added: Vec<ListedAttachment> = self
            .attachments_of(parent, what)
            .await?
            .into_iter()
            .filter(|a| a.name == name && !before.contains(&a.id))
            .collect();
        // Exchange's size counts the attachment's properties too: a whole
        // attachment is never smaller than its bytes.
        let keep = added.iter().position(|a| a.size >= size as u64);
        for (i, a) in added.iter().enumerate() {
            if Some(i) == keep {
                continue;
            }
            tracing::debug!(user = %self.email, "deleting an attachment an interrupted upload left behind");
            let url = format!("{parent}/attachments/{}", seg(&a.id));
            match self.send(&Call::delete(url, what)).await {
                Ok(_) => {}
                Err(f) if f.status == Some(404) => {}
                Err(f) => return Err(f.error),
            }
        }
        Ok(keep.is_some())
    }

    /// The item's attachments: id, name and size.
    pub(super) async fn attachments_of(&self, parent: &str, what: &str) -> Result<Vec<ListedAttachment>> {
        let mut url = format!("{parent}/attachments?$select=id,name,size");
        let mut all = Vec::new();
        loop {
            let reply = self.send(&Call::get(url, what)).await?;
            let page: AttachmentPage = parse(&reply.body, what)?;
            all.extend(page.value);
            match page.next_link {
                Some(next) => url = self.same_origin(next)?,
                None => return Ok(all),
            }
        }
    }
}

/// The PATCH that brings a created message to the source's read state,
/// flag and categories. `created` is what Exchange made of it, or `None`
/// when unknown (then everything that matters is set).
fn state_patch(flags: &Flags, created: Option<&CreatedMessage>) -> MessagePatch {
    let mut patch = MessagePatch::default();
    let want_read = flags.seen();
    if created.and_then(|c| c.is_read) != Some(want_read) {
        patch.is_read = Some(want_read);
    }
    let want_flag = json::flag_status(flags);
    let have_flag = created.map(|c| c.flag.as_ref().map_or("notFlagged", |f| f.flag_status.as_str()));
    if have_flag.is_none_or(|have| have != want_flag) {
        patch.flag = Some(api::FollowupFlag {
            flag_status: want_flag.into(),
        });
    }
    let want: Vec<String> = json::categories(flags);
    let have: Vec<String> = created.and_then(|c| c.categories.clone()).unwrap_or_default();
    let same = want.len() == have.len() && want.iter().all(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)));
    if !same && (created.is_some() || !want.is_empty()) {
        patch.categories = Some(want);
    }
    patch
}

/// The PATCH that gives a copy `flags`' read state, flag and categories
/// whatever it had: [`state_patch`] for an unknown state, with the
/// categories always set (an empty list removes those the copy had).
fn replacing_patch(flags: &Flags) -> MessagePatch {
    let mut patch = state_patch(flags, None);
    patch.categories = Some(json::categories(flags));
    patch
}

/// Upload sessions one large attachment may take when range answers are
/// lost, before the copy fails (and is made again, whole, later).
const UPLOAD_SESSIONS: u32 = 3;

/// One page of a message's attachments (`$select=id,name,size`).
/// The least time between a create whose outcome is unknown (its answer
/// timed out or its connection dropped) and the lookup that decides
/// whether to send it again: time for a late commit to become visible.
const LATE_COMMIT_WAIT: Duration = Duration::from_secs(2);

/// Whether a failed importMime means the app cannot use importMime at all
/// (permission missing, beta endpoint absent) rather than this message.
fn import_unavailable(f: &Failure) -> bool {
    let text = format!("{} {}", f.code, f.message).to_lowercase();
    let mentions_endpoint = [
        "importmime",
        "segment",
        "not supported",
        "unsupported",
        "not implemented",
    ]
    .iter()
    .any(|w| text.contains(w));
    match f.status {
        Some(403 | 405 | 501) => true,
        Some(404) => mentions_endpoint || (f.code != "ErrorItemNotFound" && !mailbox_missing(&f.code)),
        Some(400) => mentions_endpoint,
        _ => false,
    }
}

/// Upload URLs come from the server; they get message bytes (not the
/// token), and still only over https, or http to loopback.
fn check_upload_url(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Error::transient("Graph returned an unreadable upload URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::imap::is_loopback_host(parsed.host_str().unwrap_or("")) => Ok(()),
        _ => Err(Error::item(
            "Graph returned an upload URL that is not https; the attachment was not sent",
        )),
    }
}

async fn encode_base64(raw: Bytes) -> Bytes {
    if raw.len() <= BLOCKING_ABOVE {
        return Bytes::from(STANDARD.encode(&raw));
    }
    tokio::task::spawn_blocking(move || Bytes::from(STANDARD.encode(&raw)))
        .await
        .expect("base64 encoding does not panic")
}

async fn build_json(message: &Upload) -> std::result::Result<json::JsonMessage, String> {
    let stamp = stamp_of(message);
    if message.raw.len() <= BLOCKING_ABOVE {
        return json::build_stamped(
            &message.raw,
            &crate::transform::flags_with_labels(&message.flags, &message.labels),
            message.internal_date,
            Some(&stamp),
        );
    }
    let (raw, flags, date) = (
        message.raw.clone(),
        crate::transform::flags_with_labels(&message.flags, &message.labels),
        message.internal_date,
    );
    tokio::task::spawn_blocking(move || json::build_stamped(&raw, &flags, date, Some(&stamp)))
        .await
        .map_err(|e| format!("conversion failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: &str, message: &str) -> Failure {
        let body = serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}})).unwrap();
        super::super::failure::classify(status, None, &body, "import message")
    }

    #[test]
    fn import_mime_unavailable_is_told_apart_from_a_bad_message() {
        assert!(import_unavailable(&failure(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again."
        )));
        assert!(import_unavailable(&failure(
            400,
            "BadRequest",
            "Resource not found for the segment 'importMime'."
        )));
        assert!(import_unavailable(&failure(404, "UnknownError", "")));
        assert!(import_unavailable(&failure(405, "", "")));
        assert!(!import_unavailable(&failure(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content."
        )));
        assert!(!import_unavailable(&failure(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store."
        )));
        assert!(!import_unavailable(&failure(
            404,
            "ErrorInvalidUser",
            "The requested user is invalid."
        )));
        assert!(!import_unavailable(&failure(429, "ApplicationThrottled", "")));
        assert!(!import_unavailable(&failure(500, "", "")));
    }

    fn created(is_read: bool, flag: Option<&str>, categories: &[&str]) -> CreatedMessage {
        CreatedMessage {
            id: "m1".into(),
            is_read: Some(is_read),
            flag: flag.map(|f| api::FollowupFlag { flag_status: f.into() }),
            categories: Some(categories.iter().map(|c| c.to_string()).collect()),
            received_date_time: None,
        }
    }

    #[test]
    fn only_differences_are_patched() {
        let flags = Flags::from_wire("\\Seen \\Flagged Work");
        assert!(state_patch(&flags, Some(&created(true, Some("flagged"), &["work"]))).is_empty());
        let p = state_patch(&flags, Some(&created(false, Some("notFlagged"), &[])));
        assert_eq!(p.is_read, Some(true));
        assert_eq!(p.flag.unwrap().flag_status, "flagged");
        assert_eq!(p.categories, Some(vec!["Work".to_owned()]));
        // Unread and unflagged, as Exchange created it: nothing to do.
        assert!(state_patch(&Flags::default(), Some(&created(false, None, &[]))).is_empty());
        // Exchange added a category the source does not have: removed.
        let p = state_patch(&Flags::default(), Some(&created(false, None, &["Imported"])));
        assert_eq!(p.categories, Some(vec![]));
        // State unknown (found after an interrupted create): set it all.
        let p = state_patch(&Flags::from_wire("\\Seen"), None);
        assert_eq!(
            (p.is_read, p.flag.map(|f| f.flag_status), p.categories),
            (Some(true), Some("notFlagged".into()), None)
        );
    }

    #[test]
    fn a_flag_update_replaces_all_three_as_an_upload_maps_them() {
        let p = replacing_patch(&Flags::from_wire("\\Seen Work $Forwarded \\Answered"));
        assert_eq!(
            (p.is_read, p.flag.map(|f| f.flag_status), p.categories),
            (Some(true), Some("notFlagged".into()), Some(vec!["Work".to_owned()]))
        );
        // No keywords left: the categories the copy had are removed.
        let p = replacing_patch(&Flags::from_wire("\\Flagged"));
        assert_eq!(
            (p.is_read, p.flag.map(|f| f.flag_status), p.categories),
            (Some(false), Some("flagged".into()), Some(vec![]))
        );
        assert_eq!(p.single_value_extended_properties, None, "the stamp stays as it is");
    }

    #[test]
    fn upload_urls_must_be_https_or_loopback() {
        assert!(
            check_upload_url(
                "https://outlook.office.com/api/gv1.0/users('x')/messages('y')/AttachmentSessions('z')?authtoken=t"
            )
            .is_ok()
        );
        assert!(check_upload_url("http://127.0.0.1:9999/upload/1").is_ok());
        assert!(check_upload_url("http://attacker.example/upload").is_err());
    }
}
