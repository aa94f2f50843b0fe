//! Reading a copy back for `cutover verify`: does the item hold the source
//! message's content? An imported item whose MIME Graph returns unchanged
//! is the message, byte for byte. Anything else (json copies, and imports
//! Exchange re-rendered) is compared by what Exchange made of it: the text
//! of its body and every attachment's name, size and SHA-256
//! ([`json::content`]).

use serde::Deserialize;

use super::api::ListedAttachment;
use super::client::Call;
use super::{GraphSession, json, parse, seg};
use crate::error::Result;
use crate::target::Inventoried;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemRead {
    body: BodyRead,
    #[serde(default)]
    has_attachments: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyRead {
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    content: String,
}

impl GraphSession {
    /// `compare_content`: `None` when the item holds `raw`'s content.
    pub(super) async fn compare_copy(&self, item: &Inventoried, raw: &[u8]) -> Result<Option<String>> {
        // importMime keeps the bytes: one request settles it where Graph
        // returns them unchanged (Exchange Online may re-render them).
        if !self.inner.json_now() && self.same_mime(&item.id, raw).await? {
            return Ok(None);
        }
        let expected = match json::expected_content(raw) {
            Ok(e) => e,
            Err(why) => return Ok(Some(format!("the copy cannot be compared: {why}"))),
        };
        let url = format!("{}/messages/{}?$select=body,hasAttachments", self.users, seg(&item.id));
        let read: ItemRead = match self.send(&Call::get(url, "read a copy back")).await {
            Ok(reply) => parse(&reply.body, "read a copy back")?,
            Err(f) if f.code == "ErrorItemNotFound" => {
                return Ok(Some(
                    "the target no longer has the copy (deleted since it was listed?)".into(),
                ));
            }
            Err(f) => return Err(f.error),
        };
        let mut attachments = Vec::new();
        // Exchange's hasAttachments leaves out inline ones: list them too
        // when the source has any.
        if read.has_attachments || expected.has_attachments() {
            for a in self.attachments_of(&item.id, "list a copy's attachments").await? {
                attachments.push(self.attachment_summary(&item.id, a).await?);
            }
        }
        Ok(expected.compare(&read.body.content_type, &read.body.content, &attachments))
    }

    /// A file attachment by its bytes (`$value`); an attached item by name.
    async fn attachment_summary(&self, message: &str, a: ListedAttachment) -> Result<json::content::Summary> {
        if !a.odata_type.ends_with("fileAttachment") {
            return Ok(json::content::Summary {
                name: a.name,
                size: a.size,
                sha256: None,
            });
        }
        let url = format!(
            "{}/messages/{}/attachments/{}/$value",
            self.users,
            seg(message),
            seg(&a.id)
        );
        let reply = self
            .send(&Call::get(url, "read an attachment back"))
            .await
            .map_err(|f| f.error)?;
        Ok(json::content::Summary::of_bytes(&a.name, &reply.body))
    }
}
