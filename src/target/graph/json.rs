//! MIME → Graph message JSON, for `write_mode = "json"` (tenants that do
//! not grant Mail-Advanced.ReadWrite.All for importMime).
//!
//! Graph ignores `receivedDateTime`, `sentDateTime` and
//! `internetMessageHeaders` on creation but honours MAPI properties set in
//! the create request, so the message carries them as
//! `singleValueExtendedProperties`: PR_MESSAGE_FLAGS (0x0E07: read or not,
//! and never the "unsent" bit, so the item is not a draft), the delivery
//! time (0x0E06 = INTERNALDATE), the submit time (0x0039 = Date header),
//! the original header block (0x007D) and the threading headers (0x1042,
//! 0x1039). The body is re-rendered by Exchange from the JSON, so this mode
//! is not byte-identical; importMime is.
//!
//! A pure function over bytes, with no I/O, so it can be unit-tested and
//! benchmarked. It also decides which attachments ride in the create
//! request (each at most 3 MiB, while the whole request stays under 4 MiB)
//! and which must be added afterwards, one request or upload session each.
//!
//! Attached messages (message/rfc822) are kept as `.eml` file attachments
//! with their bytes untouched, rather than converted to itemAttachments:
//! an itemAttachment would be a lossy re-rendering of a message inside a
//! message, with no upload-session path for large ones, while Outlook opens
//! an attached `.eml` as a message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{Addr, Address, HeaderName, MessageParser, MessagePart, MimeHeaders, PartType};

use super::api::{EmailAddress, ExtendedProperty, FileAttachment, FollowupFlag, ItemBody, NewMessage, Recipient};
use crate::model::Flags;

/// Largest attachment sent inside a JSON request (create or
/// `POST /attachments`); larger ones go through an upload session.
pub const ATTACHMENT_INLINE_MAX: usize = 3 * 1024 * 1024;
/// Graph's limit on a JSON request's size.
pub const REQUEST_MAX: usize = 4 * 1024 * 1024;

/// A message ready to create: the request body, plus the attachments that
/// did not fit in it.
#[derive(Debug)]
pub struct JsonMessage {
    /// The JSON body of `POST /mailFolders/{id}/messages`.
    pub request: Vec<u8>,
    /// Attachments to add after creation, in the message's order.
    pub deferred: Vec<Attachment>,
}

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

/// IMAP keywords that become Outlook categories: user keywords, not system
/// flags (`\Seen`) nor the `$`-prefixed conventions (`$Forwarded`,
/// `$MDNSent`, `$Label1`), which are client state rather than labels.
pub fn categories(flags: &Flags) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in &flags.0 {
        if f.is_empty() || f.starts_with('$') || f.starts_with('\\') {
            continue;
        }
        if !out.iter().any(|c| c.eq_ignore_ascii_case(f)) {
            out.push(f.clone());
        }
    }
    out
}

/// The Graph follow-up flag status for IMAP `\Flagged`.
pub fn flag_status(flags: &Flags) -> &'static str {
    if flags.flagged() { "flagged" } else { "notFlagged" }
}

/// `<id>` as Graph's internetMessageId spells it, from a Message-ID with
/// or without brackets.
pub fn bracketed_message_id(id: &str) -> Option<String> {
    let id = id.trim();
    let bare = id.trim_start_matches('<').trim_end_matches('>').trim();
    (!bare.is_empty()).then(|| format!("<{bare}>"))
}

// cutover's named MAPI properties live in a property set (GUID) of its
// own, so they never collide with another application's.

/// `String {set} Name cutoverKey`: cutover's key for the source message
/// ([`Stamp::key`]). Lets an interrupted run find a message it already
/// wrote even when the message has no Message-ID.
pub const KEY_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverKey";
/// `Integer {set} Name cutoverSourceSize`: the message's size at the
/// source, so `cutover verify` can compare sizes (Exchange's own
/// PR_MESSAGE_SIZE differs from the MIME size).
pub const SIZE_PROPERTY: &str = "Integer {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverSourceSize";
/// `String {set} Name cutoverMessageId`: the Message-ID as the source scan
/// read it, absent when the source message has none. Exchange makes one up
/// for a message without, and may pick another of several Message-ID
/// headers; `cutover verify` must compare what the source says.
pub const MESSAGE_ID_PROPERTY: &str = "String {8c1f5e3a-6b2d-4f7e-9a41-2d6c0b7e5f13} Name cutoverMessageId";

/// What cutover writes on every message besides its content: where it
/// came from, as named extended properties. Both write modes carry it
/// (json in the create request, importMime in the PATCH that follows the
/// import), and the MIME itself is never touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// A digest of the source message's identity (mailbox, folder,
    /// UIDVALIDITY, UID): stable across runs, 32 hex digits.
    pub key: String,
    /// RFC822.SIZE at the source.
    pub source_size: u64,
    /// The Message-ID as the source scan read it.
    pub message_id: Option<String>,
}

impl Stamp {
    /// The stamp for the source message `key` (see [`crate::model::Upload::key`]).
    pub fn new(key: &str, source_size: u64, message_id: Option<&str>) -> Stamp {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        Stamp {
            key: digest[..16].iter().map(|b| format!("{b:02x}")).collect(),
            source_size,
            message_id: message_id.map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned),
        }
    }

    /// The key a copy carries while it is still being made (json mode:
    /// created, attachments still to add). A lookup that finds it knows
    /// the copy is cutover's own and unfinished.
    pub fn pending(key: &str) -> String {
        format!("{key}-pending")
    }

    pub(super) fn properties(&self) -> Vec<ExtendedProperty> {
        let mut props = vec![
            ExtendedProperty {
                id: KEY_PROPERTY,
                value: self.key.clone(),
            },
            ExtendedProperty {
                id: SIZE_PROPERTY,
                // A MAPI Integer is 32-bit; Exchange takes nothing that large anyway.
                value: self.source_size.min(i32::MAX as u64).to_string(),
            },
        ];
        if let Some(id) = &self.message_id {
            props.push(ExtendedProperty {
                id: MESSAGE_ID_PROPERTY,
                value: id.clone(),
            });
        }
        props
    }
}

/// Builds the create request for one message. `internal_date` is the
/// source's INTERNALDATE (unix seconds; 0 when unknown).
///
/// Hostile MIME must fail this one message, never the run: should the MIME
/// parser panic on a structure it does not expect (fuzzing found inputs
/// that trip its internal assertions), the message is refused with a
/// reason instead.
pub fn build(raw: &[u8], flags: &Flags, internal_date: i64) -> Result<JsonMessage, String> {
    std::panic::catch_unwind(|| build_unguarded(raw, flags, internal_date))
        .unwrap_or_else(|_| Err("the MIME structure of this message is too broken to convert to Graph JSON".to_owned()))
}

fn build_unguarded(raw: &[u8], flags: &Flags, internal_date: i64) -> Result<JsonMessage, String> {
    build_stamped(raw, flags, internal_date, None)
}

/// [`build`], with cutover's [`Stamp`] among the extended properties.
pub fn build_stamped(
    raw: &[u8],
    flags: &Flags,
    internal_date: i64,
    stamp: Option<&Stamp>,
) -> Result<JsonMessage, String> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| "the message could not be parsed as MIME (no header block)".to_owned())?;
    let root = msg.root_part();

    let date_header = msg.date().map(|d| d.to_timestamp()).and_then(system_time);
    let received = system_time(internal_date)
        .filter(|_| internal_date > 0)
        .or_else(|| date_header.clone());
    let sent = date_header.or_else(|| received.clone());

    // PR_MESSAGE_FLAGS: MSGFLAG_READ or nothing. Setting it at creation is
    // what keeps Exchange from adding MSGFLAG_UNSENT (a draft).
    let mut props = vec![ExtendedProperty {
        id: "Integer 0x0E07",
        value: if flags.seen() { "1" } else { "0" }.into(),
    }];
    if let Some(r) = received {
        props.push(ExtendedProperty {
            id: "SystemTime 0x0E06",
            value: r,
        });
    }
    if let Some(s) = sent {
        props.push(ExtendedProperty {
            id: "SystemTime 0x0039",
            value: s,
        });
    }
    let header_end = (root.raw_body_offset() as usize).min(raw.len());
    let header_block = text_of(&raw[..header_end]);
    let header_block = header_block.trim_end_matches(['\r', '\n']);
    if !header_block.is_empty() {
        props.push(ExtendedProperty {
            id: "String 0x007D",
            value: format!("{header_block}\r\n\r\n"),
        });
    }
    if let Some(v) = msg
        .header_raw(HeaderName::InReplyTo)
        .map(unfold)
        .filter(|v| !v.is_empty())
    {
        props.push(ExtendedProperty {
            id: "String 0x1042",
            value: v,
        });
    }
    if let Some(v) = msg
        .header_raw(HeaderName::References)
        .map(unfold)
        .filter(|v| !v.is_empty())
    {
        props.push(ExtendedProperty {
            id: "String 0x1039",
            value: v,
        });
    }
    if let Some(stamp) = stamp {
        props.extend(stamp.properties());
    }

    let first = |a: Option<&Address>| a.and_then(|a| a.iter().find_map(recipient));
    let all = |a: Option<&Address>| {
        a.map(|a| a.iter().filter_map(recipient).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut message = NewMessage {
        // The first Message-ID header, as the source scan and verify read
        // it, should a message carry several.
        internet_message_id: msg
            .header_values(HeaderName::MessageId)
            .find_map(|v| v.as_text())
            .and_then(bracketed_message_id),
        subject: msg.subject().unwrap_or_default().to_owned(),
        body: body(&msg),
        from: first(msg.from()),
        sender: first(msg.sender()),
        to_recipients: all(msg.to()),
        cc_recipients: all(msg.cc()),
        bcc_recipients: all(msg.bcc()),
        reply_to: all(msg.reply_to()),
        importance: importance(&msg),
        is_read: flags.seen(),
        flag: flags.flagged().then(|| FollowupFlag {
            flag_status: "flagged".into(),
        }),
        categories: categories(flags),
        single_value_extended_properties: props,
        attachments: Vec::new(),
    };

    // Attachments ride along while the request stays under the limit; the
    // rest are added after creation.
    let attachments = attachments(raw, &msg);
    let mut size = serde_json::to_vec(&message).map_err(|e| e.to_string())?.len();
    let mut deferred = Vec::new();
    for a in attachments {
        if a.bytes.len() <= ATTACHMENT_INLINE_MAX {
            let wire = a.to_wire();
            let len = serde_json::to_vec(&wire).map_err(|e| e.to_string())?.len() + 1;
            if size + len < REQUEST_MAX {
                size += len;
                message.attachments.push(wire);
                continue;
            }
        }
        deferred.push(a);
    }
    if !deferred.is_empty() {
        // Not complete until the deferred attachments are added: marked
        // pending, and given its final stamp after the last one.
        for p in &mut message.single_value_extended_properties {
            if p.id == KEY_PROPERTY {
                p.value = Stamp::pending(&p.value);
            }
        }
    }
    let request = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
    Ok(JsonMessage { request, deferred })
}

/// A MAPI SystemTime value (UTC, second precision) from unix seconds, or
/// `None` outside what FILETIME and Graph accept.
fn system_time(unix: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp(unix, 0)?;
    let year = chrono::Datelike::year(&t);
    (1601..=9999)
        .contains(&year)
        .then(|| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Header bytes as text: UTF-8 when valid, else Latin-1 (every byte kept
/// as one character), never replacement characters.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// A raw header value on one line.
fn unfold(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn recipient(a: &Addr) -> Option<Recipient> {
    let address = a.address()?.trim();
    if address.is_empty() {
        return None;
    }
    let name = a.name().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    Some(Recipient {
        email_address: EmailAddress {
            name,
            address: address.to_owned(),
        },
    })
}

/// Importance from `Importance:`, else `X-Priority:` (1-2 high, 4-5 low),
/// else `Priority:`.
fn importance(msg: &mail_parser::Message) -> &'static str {
    let header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if let Some(v) = header("Importance") {
        if v.starts_with("high") {
            return "high";
        }
        if v.starts_with("low") {
            return "low";
        }
    }
    if let Some(v) = header("X-Priority") {
        match v.chars().next() {
            Some('1' | '2') => return "high",
            Some('4' | '5') => return "low",
            _ => {}
        }
    }
    match header("Priority").as_deref() {
        Some("urgent") => "high",
        Some("non-urgent") => "low",
        _ => "normal",
    }
}

/// The body: HTML when the message has any (text parts beside it are
/// converted), else plain text. Several body parts (text, then an inline
/// image, then more text) are joined in order.
fn body(msg: &mail_parser::Message) -> ItemBody {
    let has_html = msg.html_bodies().any(|p| matches!(p.body, PartType::Html(_)));
    if has_html {
        let content: Vec<String> = (0..msg.html_body_count())
            .filter_map(|i| msg.body_html(i).map(|c| c.into_owned()))
            .collect();
        ItemBody {
            content_type: "html",
            content: content.join("\n"),
        }
    } else {
        let content: Vec<String> = (0..msg.text_body_count())
            .filter_map(|i| msg.body_text(i).map(|c| c.into_owned()))
            .collect();
        ItemBody {
            content_type: "text",
            content: content.join("\n"),
        }
    }
}

/// Every attachment of the message (not of messages attached to it), with
/// its original bytes.
fn attachments(raw: &[u8], msg: &mail_parser::Message) -> Vec<Attachment> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn build_value(raw: &str, flags: &str, internal_date: i64) -> (Value, Vec<Attachment>) {
        let built = build(raw.as_bytes(), &Flags::from_wire(flags), internal_date).unwrap();
        (serde_json::from_slice(&built.request).unwrap(), built.deferred)
    }

    fn prop<'a>(v: &'a Value, id: &str) -> Option<&'a str> {
        v["singleValueExtendedProperties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .and_then(|p| p["value"].as_str())
    }

    const ALTERNATIVE: &str = "Return-Path: <a@example.com>\r\n\
Received: from mx.example.com by mx2.example.com; Tue, 30 Apr 2019 10:00:00 +0000\r\n\
From: \"Ann Example\" <ann@example.com>\r\n\
Sender: list@example.com\r\n\
To: Bob <bob@example.com>, carol@example.com\r\n\
Cc: team: dan@example.com, erin@example.com;\r\n\
Reply-To: replies@example.com\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Tue, 30 Apr 2019 12:00:00 +0200\r\n\
Message-ID: <abc.123@example.com>\r\n\
In-Reply-To: <parent@example.com>\r\n\
References: <root@example.com>\r\n <parent@example.com>\r\n\
X-Priority: 1 (Highest)\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello plain\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello <b>html</b></p>\r\n\
--b1--\r\n";

    #[test]
    fn alternative_message_keeps_html_addresses_dates_and_threading() {
        let (v, deferred) = build_value(ALTERNATIVE, "\\Seen \\Flagged Work $Forwarded $Label1", 1_556_704_800);
        assert!(deferred.is_empty());
        assert_eq!(v["internetMessageId"], "<abc.123@example.com>");
        assert_eq!(v["subject"], "Grüße");
        assert_eq!(v["body"]["contentType"], "html");
        assert!(v["body"]["content"].as_str().unwrap().contains("<b>html</b>"));
        assert_eq!(v["from"]["emailAddress"]["address"], "ann@example.com");
        assert_eq!(v["from"]["emailAddress"]["name"], "Ann Example");
        assert_eq!(v["sender"]["emailAddress"]["address"], "list@example.com");
        let to: Vec<&str> = v["toRecipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["emailAddress"]["address"].as_str().unwrap())
            .collect();
        assert_eq!(to, ["bob@example.com", "carol@example.com"]);
        let cc: Vec<&str> = v["ccRecipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["emailAddress"]["address"].as_str().unwrap())
            .collect();
        assert_eq!(
            cc,
            ["dan@example.com", "erin@example.com"],
            "group members are flattened"
        );
        assert_eq!(v["replyTo"][0]["emailAddress"]["address"], "replies@example.com");
        assert_eq!(v["importance"], "high");
        assert_eq!(v["isRead"], true);
        assert_eq!(v["flag"]["flagStatus"], "flagged");
        assert_eq!(v["categories"], serde_json::json!(["Work"]));
        // Read, never unsent; received = INTERNALDATE, sent = Date header.
        assert_eq!(prop(&v, "Integer 0x0E07"), Some("1"));
        assert_eq!(prop(&v, "SystemTime 0x0E06"), Some("2019-05-01T10:00:00Z"));
        assert_eq!(prop(&v, "SystemTime 0x0039"), Some("2019-04-30T10:00:00Z"));
        assert_eq!(prop(&v, "String 0x1042"), Some("<parent@example.com>"));
        assert_eq!(
            prop(&v, "String 0x1039"),
            Some("<root@example.com> <parent@example.com>")
        );
        let headers = prop(&v, "String 0x007D").unwrap();
        assert!(
            headers.starts_with("Return-Path: <a@example.com>\r\nReceived: from mx.example.com"),
            "{headers}"
        );
        assert!(headers.ends_with("boundary=\"b1\"\r\n\r\n"), "{headers}");
        assert!(!headers.contains("Hello plain"));
        // Dates Graph ignores on creation are never relied on.
        assert!(v.get("receivedDateTime").is_none() && v.get("sentDateTime").is_none());
    }

    #[test]
    fn unread_plain_text_without_message_id_or_date() {
        let raw = "From: a@example.com\r\nSubject: no id\r\n\r\nJust text.\r\n";
        let (v, _) = build_value(raw, "", 1_600_000_000);
        assert!(v.get("internetMessageId").is_none());
        assert_eq!(v["body"]["contentType"], "text");
        assert_eq!(v["body"]["content"].as_str().unwrap().trim_end(), "Just text.");
        assert_eq!(v["isRead"], false);
        assert!(v.get("flag").is_none());
        assert_eq!(v["importance"], "normal");
        assert_eq!(prop(&v, "Integer 0x0E07"), Some("0"));
        // Without a Date header the submit time falls back to INTERNALDATE.
        assert_eq!(prop(&v, "SystemTime 0x0E06"), Some("2020-09-13T12:26:40Z"));
        assert_eq!(prop(&v, "SystemTime 0x0039"), Some("2020-09-13T12:26:40Z"));
        assert_eq!(prop(&v, "String 0x1042"), None);
    }

    #[test]
    fn non_utf8_charsets_are_decoded() {
        let mut raw = b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.com>\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\nMessage-ID: x@y\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
        raw.extend_from_slice(b"d\xe9j\xe0 vu\r\n");
        let built = build(&raw, &Flags::default(), 1).unwrap();
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        assert_eq!(v["subject"], "café");
        assert_eq!(v["from"]["emailAddress"]["name"], "André");
        assert!(v["body"]["content"].as_str().unwrap().contains("déjà vu"));
        assert_eq!(v["internetMessageId"], "<x@y>", "brackets are added");
    }

    #[test]
    fn raw_latin1_header_bytes_survive_in_the_header_property() {
        let raw = b"From: a@example.com\r\nSubject: caf\xe9\r\n\r\nbody\r\n";
        let built = build(raw, &Flags::default(), 1).unwrap();
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        let headers = prop(&v, "String 0x007D").unwrap();
        assert!(headers.contains("Subject: café"), "{headers}");
        assert!(!headers.contains('\u{FFFD}'));
    }

    fn with_attachments(parts: &[(&str, &str, &[u8])]) -> String {
        let mut raw = String::from(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: files\r\nMessage-ID: <f@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
        );
        for (name, ctype, bytes) in parts {
            raw.push_str(&format!(
                "--mix\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            ));
            let encoded = STANDARD.encode(bytes);
            for line in encoded.as_bytes().chunks(76) {
                raw.push_str(std::str::from_utf8(line).unwrap());
                raw.push_str("\r\n");
            }
        }
        raw.push_str("--mix--\r\n");
        raw
    }

    #[test]
    fn small_attachments_ride_in_the_request_and_large_ones_are_deferred() {
        let small = vec![7u8; 1000];
        let big = vec![9u8; 5 * 1024 * 1024];
        let middle = vec![1u8; 2 * 1024 * 1024];
        let middle2 = vec![2u8; 2 * 1024 * 1024];
        let raw = with_attachments(&[
            ("a.bin", "application/octet-stream", &small),
            ("big.pdf", "application/pdf", &big),
            ("m1.bin", "application/octet-stream", &middle),
            ("m2.bin", "application/octet-stream", &middle2),
        ]);
        let built = build(raw.as_bytes(), &Flags::default(), 1).unwrap();
        assert!(built.request.len() < REQUEST_MAX, "{}", built.request.len());
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        let inline = v["attachments"].as_array().unwrap();
        // a.bin and m1.bin fit; m2.bin would push the request over 4 MiB;
        // big.pdf is over 3 MiB.
        let names: Vec<&str> = inline.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a.bin", "m1.bin"]);
        assert_eq!(inline[0]["@odata.type"], "#microsoft.graph.fileAttachment");
        assert_eq!(inline[0]["contentBytes"], STANDARD.encode(&small));
        assert_eq!(inline[0]["isInline"], false);
        let deferred: Vec<(&str, usize)> = built
            .deferred
            .iter()
            .map(|a| (a.name.as_str(), a.bytes.len()))
            .collect();
        assert_eq!(deferred, [("big.pdf", big.len()), ("m2.bin", middle2.len())]);
        assert_eq!(built.deferred[0].bytes, big, "bytes are decoded exactly");
        assert_eq!(built.deferred[0].content_type, "application/pdf");
    }

    #[test]
    fn the_stamp_is_final_only_when_nothing_is_left_to_add() {
        let stamp = Stamp::new("u@example.com/INBOX/7/42", 1234, Some("<a@b>"));
        assert_eq!(stamp.key.len(), 32);
        assert_eq!(stamp, Stamp::new("u@example.com/INBOX/7/42", 1234, Some(" <a@b> ")));
        assert_ne!(stamp.key, Stamp::new("u@example.com/INBOX/7/43", 1234, None).key);
        // Everything in the request: the final stamp at creation.
        let small = with_attachments(&[("a.bin", "application/octet-stream", &[1u8; 100])]);
        let built = build_stamped(small.as_bytes(), &Flags::default(), 1, Some(&stamp)).unwrap();
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        assert_eq!(prop(&v, KEY_PROPERTY), Some(stamp.key.as_str()));
        assert_eq!(prop(&v, SIZE_PROPERTY), Some("1234"));
        assert_eq!(prop(&v, MESSAGE_ID_PROPERTY), Some("<a@b>"));
        // An attachment to add afterwards: pending until it is there.
        let big = with_attachments(&[("big.bin", "application/octet-stream", &vec![2u8; 4 * 1024 * 1024])]);
        let built = build_stamped(big.as_bytes(), &Flags::default(), 1, Some(&stamp)).unwrap();
        assert_eq!(built.deferred.len(), 1);
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        assert_eq!(prop(&v, KEY_PROPERTY), Some(Stamp::pending(&stamp.key).as_str()));
        // No Message-ID at the source: none recorded.
        let none = Stamp::new("k", 1, None);
        assert!(none.properties().iter().all(|p| p.id != MESSAGE_ID_PROPERTY));
    }

    #[test]
    fn ids_of_extended_properties_compare_as_graph_echoes_them() {
        use super::super::api::same_property;
        assert!(same_property("Integer 0x0E08", "Integer 0xe08"));
        assert!(same_property(
            KEY_PROPERTY,
            "String {8C1F5E3A-6B2D-4F7E-9A41-2D6C0B7E5F13} Name cutoverKey"
        ));
        assert!(!same_property(KEY_PROPERTY, SIZE_PROPERTY));
    }

    #[test]
    fn text_attachments_keep_their_original_bytes() {
        let latin1 = b"caf\xe9\r\n".as_slice();
        let raw = with_attachments(&[("notes.txt", "text/plain; charset=iso-8859-1", latin1)]);
        let built = build(raw.as_bytes(), &Flags::default(), 1).unwrap();
        let v: Value = serde_json::from_slice(&built.request).unwrap();
        assert_eq!(v["attachments"][0]["name"], "notes.txt");
        assert_eq!(v["attachments"][0]["contentBytes"], STANDARD.encode(latin1));
        assert_eq!(v["body"]["content"].as_str().unwrap().trim_end(), "See attached.");
    }

    #[test]
    fn inline_images_keep_content_id() {
        let png = b"\x89PNG\r\n\x1a\nfake image".as_slice();
        let raw = format!(
            "From: a@example.com\r\nSubject: pic\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><img src=\"cid:logo@example\"></p>\r\n\
--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@example>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--rel--\r\n",
            STANDARD.encode(png)
        );
        let (v, _) = build_value(&raw, "", 1);
        assert_eq!(v["body"]["contentType"], "html");
        assert!(v["body"]["content"].as_str().unwrap().contains("cid:logo@example"));
        let att = &v["attachments"][0];
        assert_eq!(att["isInline"], true);
        assert_eq!(att["contentId"], "logo@example");
        assert_eq!(att["contentType"], "image/png");
        assert_eq!(att["name"], "attachment-1.png");
        assert_eq!(att["contentBytes"], STANDARD.encode(png));
        assert_eq!(v["attachments"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn attached_messages_become_eml_files_with_their_bytes() {
        let inner =
            "From: x@example.com\r\nSubject: Inner: report?\r\nMessage-ID: <inner@example.com>\r\n\r\nInner body\r\n";
        let raw = format!(
            "From: a@example.com\r\nSubject: Fwd\r\nMessage-ID: <outer@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
--m\r\nContent-Type: text/plain\r\n\r\nForwarded below.\r\n--m\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--m--\r\n"
        );
        let (v, _) = build_value(&raw, "", 1);
        assert_eq!(v["internetMessageId"], "<outer@example.com>");
        let att = &v["attachments"][0];
        assert_eq!(att["name"], "Inner_ report_.eml");
        assert_eq!(att["contentType"], "message/rfc822");
        assert_eq!(att["isInline"], false);
        let bytes = STANDARD.decode(att["contentBytes"].as_str().unwrap()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("From: x@example.com\r\n"), "{text:?}");
        assert!(text.contains("Inner body"));
        assert!(
            !text.contains("Forwarded below"),
            "only the attached message, not its parent"
        );
        assert_eq!(v["body"]["content"].as_str().unwrap().trim_end(), "Forwarded below.");
    }

    #[test]
    fn categories_and_message_ids_are_normalised() {
        let flags = Flags::from_wire("\\Seen $MDNSent Work work Project-X \\Flagged");
        assert_eq!(categories(&flags), ["Work", "Project-X"]);
        assert_eq!(flag_status(&flags), "flagged");
        assert_eq!(flag_status(&Flags::default()), "notFlagged");
        assert_eq!(bracketed_message_id("<a@b>").as_deref(), Some("<a@b>"));
        assert_eq!(bracketed_message_id(" a@b ").as_deref(), Some("<a@b>"));
        assert_eq!(bracketed_message_id("<>"), None);
    }
}
