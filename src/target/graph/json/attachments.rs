//! The attachments of a message, for the json write mode: each with its
//! original bytes (only the transfer encoding undone), its Content-ID and
//! whether it is shown in the body, ready to ride in the create request or
//! to be added afterwards ([`ATTACHMENT_INLINE_MAX`](super::ATTACHMENT_INLINE_MAX)).
//!
//! Attached messages (message/rfc822) are kept as `.eml` file attachments
//! with their bytes untouched, rather than converted to itemAttachments:
//! an itemAttachment would be a lossy re-rendering of a message inside a
//! message, with no upload-session path for large ones, while Outlook opens
//! an attached `.eml` as a message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{MessagePart, MimeHeaders, PartType};

use super::super::api::FileAttachment;

/// One attachment, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    /// Without angle brackets, as HTML `cid:` references use it.
    pub content_id: Option<String>,
    pub is_inline: bool,
    pub bytes: Vec<u8>,
}

impl Attachment {
    pub fn to_wire(&self) -> FileAttachment {
        FileAttachment {
            odata_type: "#microsoft.graph.fileAttachment",
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            is_inline: self.is_inline,
            content_id: self.content_id.clone(),
            content_bytes: STANDARD.encode(&self.bytes),
        }
    }

    /// The JSON body of `POST /messages/{id}/attachments` for it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_wire()).expect("attachment serializes")
    }
}

/// Every attachment of the message (not of messages attached to it), with
/// its original bytes.
pub(super) fn attachments(raw: &[u8], msg: &mail_parser::Message) -> Vec<Attachment> {
    let mut out = Vec::new();
    for (n, part) in msg.attachments().enumerate() {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            })
            .map(|ct| ct.to_ascii_lowercase())
            .unwrap_or_else(|| "application/octet-stream".into());
        let is_message = matches!(part.body, PartType::Message(_)) || content_type == "message/rfc822";
        let bytes = part_bytes(raw, part);
        let content_id = part
            .content_id()
            .map(|c| c.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
            .filter(|c| !c.is_empty());
        let disposition = part.content_disposition().map(|d| d.ctype().to_ascii_lowercase());
        // Inline means "shown in the body": it has a Content-ID the HTML can
        // reference and is not explicitly an attachment.
        let is_inline = content_id.is_some() && disposition.as_deref() != Some("attachment") && !is_message;
        let name = match part.attachment_name().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None if is_message => {
                let subject = part.message().and_then(|m| m.subject()).unwrap_or("");
                format!("{}.eml", file_name(subject, "message"))
            }
            None => format!("attachment-{}{}", n + 1, extension(&content_type)),
        };
        out.push(Attachment {
            name,
            content_type: if is_message {
                "message/rfc822".into()
            } else {
                content_type
            },
            content_id,
            is_inline,
            bytes,
        });
    }
    out
}

/// A part's decoded bytes exactly as sent. mail-parser converts text parts
/// to UTF-8 and keeps a nested message's parent bytes, so for those the
/// bytes come from the raw message and only the transfer encoding is undone.
fn part_bytes(raw: &[u8], part: &MessagePart) -> Vec<u8> {
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
        _ => {
            let start = (part.raw_body_offset() as usize).min(raw.len());
            let end = (part.raw_end_offset() as usize).clamp(start, raw.len());
            let body = &raw[start..end];
            let decoded = match part
                .content_transfer_encoding()
                .map(|e| e.trim().to_ascii_lowercase())
                .as_deref()
            {
                Some("base64") => mail_parser::decoders::base64::base64_decode(body),
                Some("quoted-printable") => mail_parser::decoders::quoted_printable::quoted_printable_decode(body),
                _ => None,
            };
            decoded.unwrap_or_else(|| body.to_vec())
        }
    }
}

/// A file name from free text: no path or reserved characters, not empty,
/// not overly long.
fn file_name(text: &str, fallback: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_control() || "\\/:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_matches('.').trim();
    if cleaned.is_empty() {
        return fallback.to_owned();
    }
    cleaned.chars().take(100).collect()
}

fn extension(content_type: &str) -> String {
    let sub = content_type.split('/').nth(1).unwrap_or("");
    match sub {
        "jpeg" => ".jpg".into(),
        "plain" => ".txt".into(),
        s if !s.is_empty() && s.len() <= 5 && s.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!(".{s}")
        }
        _ => ".bin".into(),
    }
}
