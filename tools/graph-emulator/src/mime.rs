//! MIME in and out: turning a client's RFC 822 message into message
//! properties (MIME create, importMime), and rendering a message back to MIME
//! for `GET …/$value` when no original bytes are kept.
//!
//! Parsing uses `mail-parser` (already a dependency of the crate). Rendering
//! is hand-written: Exchange re-renders items from their properties, so a
//! JSON-created or MIME-draft item's `$value` is never the client's bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::json;

use crate::store::{Attachment, AttachmentContent, Message, Recipient};

/// Base64 as .NET's `Convert.FromBase64String` reads it: whitespace is
/// ignored, padding is required, stray low bits in the last character are
/// tolerated.
const DOTNET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes a base64 MIME request body; `None` for invalid or empty input.
pub fn decode_base64_body(body: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    DOTNET_BASE64.decode(compact).ok().filter(|v| !v.is_empty())
}

/// A parsed attachment, before it gets an id.
pub struct NewAttachment {
    pub name: String,
    pub is_inline: bool,
    pub content: AttachmentContent,
}

/// Message properties read from MIME.
#[derive(Default)]
pub struct ParsedMime {
    pub subject: String,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub date: Option<DateTime<Utc>>,
    /// Date of the topmost `Received:` header (the last hop).
    pub first_received: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
    pub importance: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body_type: String,
    pub body: String,
    pub attachments: Vec<NewAttachment>,
}

fn to_chrono(dt: &mail_parser::DateTime) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(dt.to_timestamp(), 0).single()
}

fn recipients(addr: Option<&mail_parser::Address<'_>>) -> Vec<Recipient> {
    addr.map(|a| {
        a.iter()
            .filter_map(|x| {
                Some(Recipient {
                    name: x.name().map(str::to_string).filter(|n| !n.is_empty()),
                    address: x.address()?.to_string(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Unfolds a raw header value (RFC 5322 §2.2.3) and trims it.
pub fn unfold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' || c == '\n' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// Splits a raw header block ("Name: value\r\n …") into unfolded pairs.
pub fn parse_header_block(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.to_string()));
        }
    }
    out.into_iter().map(|(n, v)| (n, v.trim().to_string())).collect()
}

/// Reads the properties Exchange derives from a MIME message.
pub fn parse(raw: &[u8]) -> ParsedMime {
    let mut p = ParsedMime {
        body_type: "text".to_string(),
        ..ParsedMime::default()
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        return p;
    };
    p.subject = msg.subject().unwrap_or("").to_string();
    p.from = recipients(msg.from()).into_iter().next();
    p.sender = recipients(msg.sender()).into_iter().next().or(p.from.clone());
    p.to = recipients(msg.to());
    p.cc = recipients(msg.cc());
    p.bcc = recipients(msg.bcc());
    p.reply_to = recipients(msg.reply_to());
    p.date = msg.date().and_then(to_chrono);
    p.message_id = msg.message_id().map(|m| format!("<{m}>"));
    p.headers = msg.headers_raw().map(|(n, v)| (n.to_string(), unfold(v))).collect();
    p.first_received = p
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("received"))
        .and_then(|(_, v)| v.rsplit_once(';'))
        .and_then(|(_, d)| mail_parser::DateTime::parse_rfc822(d.trim()))
        .and_then(|d| to_chrono(&d));
    p.importance = p.headers.iter().find_map(|(n, v)| {
        let v = v.trim().to_ascii_lowercase();
        if n.eq_ignore_ascii_case("importance") {
            ["low", "normal", "high"].contains(&v.as_str()).then_some(v)
        } else if n.eq_ignore_ascii_case("x-priority") {
            match v.chars().next() {
                Some('1' | '2') => Some("high".to_string()),
                Some('4' | '5') => Some("low".to_string()),
                Some('3') => Some("normal".to_string()),
                _ => None,
            }
        } else {
            None
        }
    });
    // Graph shows the HTML body when the message has one, else the text body.
    if let Some(part) = msg.html_part(0).filter(|part| part.is_text_html()) {
        p.body_type = "html".into();
        p.body = part.text_contents().unwrap_or("").to_string();
    } else if let Some(part) = msg.text_part(0) {
        p.body = part.text_contents().unwrap_or("").to_string();
    }
    for part in msg.attachments() {
        let name = part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| "Untitled attachment".to_string());
        let is_inline = part.content_disposition().is_some_and(|d| d.is_inline());
        let content = if let Some(inner) = part.message() {
            AttachmentContent::Item {
                item: json!({
                    "@odata.type": "#microsoft.graph.message",
                    "subject": inner.subject().unwrap_or(""),
                }),
                raw: Some(Bytes::copy_from_slice(inner.raw_message())),
            }
        } else {
            let ct = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string());
            AttachmentContent::File {
                content_type: ct,
                content_id: part.content_id().map(|c| c.trim_matches(['<', '>']).to_string()),
                bytes: Bytes::copy_from_slice(part.contents()),
            }
        };
        p.attachments.push(NewAttachment {
            name,
            is_inline,
            content,
        });
    }
    p
}

/// RFC 2047 encoding for header text that is not plain ASCII.
fn encode_word(s: &str) -> String {
    if s.is_ascii() && !s.contains(['\r', '\n']) {
        s.to_string()
    } else {
        format!("=?utf-8?B?{}?=", STANDARD.encode(s.as_bytes()))
    }
}

fn fmt_addr(r: &Recipient) -> String {
    match &r.name {
        Some(n) if !n.is_empty() => {
            if n.is_ascii() {
                format!("\"{}\" <{}>", n.replace('"', "'"), r.address)
            } else {
                format!("{} <{}>", encode_word(n), r.address)
            }
        }
        _ => format!("<{}>", r.address),
    }
}

fn b64_lines(data: &[u8], out: &mut String) {
    let enc = STANDARD.encode(data);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
}

/// Headers the renderer always writes itself.
const GENERATED: &[&str] = &[
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
];

/// Renders a message as MIME, the way Exchange answers `$value` for an item
/// whose MIME it did not keep.
pub fn render(m: &Message) -> Bytes {
    let mut out = String::new();
    let transport = m.ext_prop("String 0x7d");
    if let Some(block) = transport {
        // Items created with PR_TRANSPORT_MESSAGE_HEADERS render them as their header block.
        for (n, v) in parse_header_block(block) {
            if !GENERATED.contains(&n.to_ascii_lowercase().as_str()) {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
        }
    } else {
        if let Some(f) = &m.from {
            out.push_str(&format!("From: {}\r\n", fmt_addr(f)));
        }
        if let Some(s) = &m.sender
            && Some(s) != m.from.as_ref()
        {
            out.push_str(&format!("Sender: {}\r\n", fmt_addr(s)));
        }
        for (name, list) in [("To", &m.to), ("Cc", &m.cc), ("Bcc", &m.bcc), ("Reply-To", &m.reply_to)] {
            if !list.is_empty() {
                let v: Vec<String> = list.iter().map(fmt_addr).collect();
                out.push_str(&format!("{name}: {}\r\n", v.join(",\r\n\t")));
            }
        }
        out.push_str(&format!("Subject: {}\r\n", encode_word(&m.subject)));
        let date = m.sent.unwrap_or(m.created);
        out.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
        out.push_str(&format!("Message-ID: {}\r\n", m.internet_message_id));
        if let Some(v) = m.ext_prop("String 0x1042") {
            out.push_str(&format!("In-Reply-To: {v}\r\n"));
        }
        if let Some(v) = m.ext_prop("String 0x1039") {
            out.push_str(&format!("References: {v}\r\n"));
        }
        if m.importance != "normal" {
            out.push_str(&format!("Importance: {}\r\n", m.importance));
        }
    }
    out.push_str("MIME-Version: 1.0\r\n");
    let body_ct = if m.body_type == "html" {
        "text/html"
    } else {
        "text/plain"
    };
    if m.attachments.is_empty() {
        out.push_str(&format!(
            "Content-Type: {body_ct}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        b64_lines(m.body.as_bytes(), &mut out);
        return Bytes::from(out);
    }
    let boundary = format!("_000_{}_", &m.id[4..20].replace(['-', '_'], "x"));
    out.push_str(&format!(
        "Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: {body_ct}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    b64_lines(m.body.as_bytes(), &mut out);
    for a in &m.attachments {
        render_attachment(a, &boundary, &mut out);
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Bytes::from(out)
}

fn render_attachment(a: &Attachment, boundary: &str, out: &mut String) {
    let name = encode_word(&a.name);
    let disposition = if a.is_inline { "inline" } else { "attachment" };
    out.push_str(&format!("--{boundary}\r\n"));
    match &a.content {
        AttachmentContent::File {
            content_type,
            content_id,
            bytes,
        } => {
            out.push_str(&format!(
                "Content-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: {disposition}; filename=\"{name}\"; size={}\r\n",
                bytes.len()
            ));
            if let Some(cid) = content_id {
                out.push_str(&format!("Content-ID: <{cid}>\r\n"));
            }
            out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
            b64_lines(bytes, out);
        }
        AttachmentContent::Item { item, raw } => {
            out.push_str(&format!(
                "Content-Type: message/rfc822\r\nContent-Disposition: {disposition}; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            ));
            let data = match raw {
                Some(r) => r.to_vec(),
                None => format!(
                    "Subject: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n",
                    encode_word(item.get("subject").and_then(|s| s.as_str()).unwrap_or(""))
                )
                .into_bytes(),
            };
            b64_lines(&data, out);
        }
    }
}
