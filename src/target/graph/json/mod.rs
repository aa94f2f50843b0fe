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
//! Reading the attachments out of the MIME ([`attachments`], where attached
//! messages stay `.eml` files) and cutover's stamp ([`stamp`]) have modules
//! of their own.

mod attachments;
pub mod content;
mod stamp;

use mail_parser::{Addr, Address, HeaderName, MessageParser, PartType};

pub use self::attachments::Attachment;
pub use self::stamp::{KEY_PROPERTY, MESSAGE_ID_PROPERTY, SIZE_PROPERTY, Stamp};
use super::api::{EmailAddress, ExtendedProperty, FollowupFlag, ItemBody, NewMessage, Recipient};
use crate::model::Flags;

/// Largest attachment sent inside a JSON request (create or
/// `POST /attachments`); larger ones go through an upload session.
pub const ATTACHMENT_INLINE_MAX: usize = 3 * 1024 * 1024;
/// Graph's limit on a JSON request's size.
pub const REQUEST_MAX: usize = 4 * 1024 * 1024;

/// What a create request is cut down to when a message's body or header
/// block would push it over [`REQUEST_MAX`]: room for the rest.
const REQUEST_FIT: usize = REQUEST_MAX - 64 * 1024;

/// Exchange Online's default largest item (MaxReceiveSize 35 MB).
const ITEM_DEFAULT_MAX: usize = 35 * 1024 * 1024;

/// Name of the complete original attached to a message cut to fit.
pub const ORIGINAL_NAME: &str = "original.eml";
/// Name of the complete HTML body attached to a message cut to fit.
pub const HTML_BODY_NAME: &str = "body.html";

/// A message ready to create: the request body, plus the attachments that
/// did not fit in it.
#[derive(Debug)]
pub struct JsonMessage {
    /// The JSON body of `POST /mailFolders/{id}/messages`.
    pub request: Vec<u8>,
    /// Attachments to add after creation, in the message's order.
    pub deferred: Vec<Attachment>,
    /// The body or header block was too large for one request: the item
    /// carries a shortened body and header block, and the complete
    /// original as [`ORIGINAL_NAME`] (and a large HTML body as
    /// [`HTML_BODY_NAME`] while the item stays under 35 MB).
    pub cut_to_fit: bool,
}

pub use crate::transform::{outlook_categories as categories, outlook_flag_status as flag_status};

/// `<id>` as Graph's internetMessageId spells it, from a Message-ID with
/// or without brackets.
pub fn bracketed_message_id(id: &str) -> Option<String> {
    let id = id.trim();
    let bare = id.trim_start_matches('<').trim_end_matches('>').trim();
    (!bare.is_empty()).then(|| format!("<{bare}>"))
}

/// Builds the create request for one message. `internal_date` is the
/// source's INTERNALDATE (unix seconds; 0 when unknown).
///
/// Hostile MIME must fail this one message, never the run: should the MIME
/// parser panic on a structure it does not expect (fuzzing found inputs
/// that trip its internal assertions), the message is refused with a
/// reason instead.
pub fn build(raw: &[u8], flags: &Flags, internal_date: i64) -> Result<JsonMessage, String> {
    build_stamped(raw, flags, internal_date, None)
}

/// [`build`], with cutover's [`Stamp`] among the extended properties: what
/// the Graph target sends, under the same guard.
pub fn build_stamped(
    raw: &[u8],
    flags: &Flags,
    internal_date: i64,
    stamp: Option<&Stamp>,
) -> Result<JsonMessage, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        convert(raw, flags, internal_date, stamp)
    }))
    .unwrap_or_else(|_| Err("the MIME structure of this message is too broken to convert to Graph JSON".to_owned()))
}

fn convert(raw: &[u8], flags: &Flags, internal_date: i64, stamp: Option<&Stamp>) -> Result<JsonMessage, String> {
    let msg = parse_mime(raw)?;
    let (mut message, whole) = prepare(raw, &msg, flags, internal_date, stamp)?;
    let cut_to_fit = !whole.is_empty();

    // Attachments ride along while the request stays under the limit; the
    // rest are added after creation.
    let attachments = attachments::attachments(raw, &msg);
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
    deferred.extend(whole);
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
    Ok(JsonMessage {
        request,
        deferred,
        cut_to_fit,
    })
}

fn parse_mime(raw: &[u8]) -> Result<mail_parser::Message<'_>, String> {
    MessageParser::default()
        .parse(raw)
        .ok_or_else(|| "the message could not be parsed as MIME (no header block)".to_owned())
}

/// The message's fields as a create request holds them (without
/// attachments), cut to fit one request when they must be; then the
/// complete original (and large HTML body) to attach, empty when nothing
/// was cut.
fn prepare(
    raw: &[u8],
    msg: &mail_parser::Message,
    flags: &Flags,
    internal_date: i64,
    stamp: Option<&Stamp>,
) -> Result<(NewMessage, Vec<Attachment>), String> {
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
        body: body(msg),
        from: first(msg.from()),
        sender: first(msg.sender()),
        to_recipients: all(msg.to()),
        cc_recipients: all(msg.cc()),
        bcc_recipients: all(msg.bcc()),
        reply_to: all(msg.reply_to()),
        importance: importance(msg),
        is_read: flags.seen(),
        flag: flags.flagged().then(|| FollowupFlag {
            flag_status: "flagged".into(),
        }),
        categories: categories(flags),
        single_value_extended_properties: props,
        attachments: Vec::new(),
    };

    // A body or header block too large for one request: cut to fit, with
    // the whole original attached (added after creation).
    let whole = fit_request(&mut message, raw)?;
    Ok((message, whole))
}

/// What a copy of `raw` holds in Exchange, for `cutover verify`: the forms
/// its body and attachments may take. Under the same panic guard as
/// [`build`].
pub fn expected_content(raw: &[u8]) -> Result<content::Expected, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let msg = parse_mime(raw)?;
        let attachments = attachments::attachments(raw, &msg);
        let full = body(&msg);
        let (cut, whole) = prepare(raw, &msg, &Flags::default(), 0, None)?;
        let mut forms = vec![content::Form::new(&full, &attachments)];
        if !whole.is_empty() {
            // json mode cut it to fit; importMime keeps it whole.
            let mut with_original = attachments;
            with_original.extend(whole);
            forms.insert(0, content::Form::new(&cut.body, &with_original));
        }
        Ok(content::Expected { forms })
    }))
    .unwrap_or_else(|_| Err("the MIME structure of this message is too broken to compare".to_owned()))
}

/// The words a message cut to fit starts with.
const CUT_NOTE: &str = "[This message was too large for one Exchange request (4 MB for the body and headers of a new item). Its complete original is attached as original.eml: open it to read the message as it was.]";

/// Makes the create request fit [`REQUEST_FIT`] when the body, the header
/// block (PR_TRANSPORT_MESSAGE_HEADERS) or the recipient lists push it
/// over: they are cut, the more the larger they are, and the complete
/// original (with a large HTML body, that body too) is returned to be
/// attached. Nothing is returned when the message fits as it is.
fn fit_request(message: &mut NewMessage, raw: &[u8]) -> Result<Vec<Attachment>, String> {
    let size = |m: &NewMessage| serde_json::to_vec(m).map(|v| v.len()).map_err(|e| e.to_string());
    if size(message)? < REQUEST_FIT {
        return Ok(Vec::new());
    }
    let attachment = |name: &str, content_type: &str, bytes: Vec<u8>| Attachment {
        name: name.to_owned(),
        content_type: content_type.to_owned(),
        content_id: None,
        is_inline: false,
        bytes,
    };
    let mut whole = Vec::new();
    let body = std::mem::take(&mut message.body.content);
    let html = message.body.content_type == "html";
    // The HTML as a file of its own is handy (a browser opens it), but it
    // doubles the item: only while both stay under Exchange's default
    // 35 MB item limit. The original carries it in any case.
    if html && body.len() + raw.len() <= ITEM_DEFAULT_MAX {
        whole.push(attachment(HTML_BODY_NAME, "text/html", body.clone().into_bytes()));
    }
    whole.push(attachment(ORIGINAL_NAME, "message/rfc822", raw.to_vec()));
    let headers_at = message
        .single_value_extended_properties
        .iter()
        .position(|p| p.id == "String 0x007D");
    let headers = headers_at
        .map(|i| message.single_value_extended_properties[i].value.clone())
        .unwrap_or_default();
    let mut keep = REQUEST_FIT / 2;
    loop {
        message.body.content = if html {
            format!("<p>{CUT_NOTE}</p>")
        } else {
            format!("{CUT_NOTE}\r\n\r\n{}", prefix(&body, keep))
        };
        if let Some(i) = headers_at {
            message.single_value_extended_properties[i].value = prefix_lines(&headers, keep / 4);
        }
        // Past the first rounds, long recipient lists are cut too (the
        // original keeps them all).
        let most = (keep / 256).max(1);
        message.to_recipients.truncate(most);
        message.cc_recipients.truncate(most);
        message.bcc_recipients.truncate(most);
        message.reply_to.truncate(most);
        if size(message)? < REQUEST_FIT {
            return Ok(whole);
        }
        if keep < 1024 {
            return Err("the message's fields are too large for a Graph request even cut short".to_owned());
        }
        keep /= 2;
    }
}

/// The start of `s`, at most `bytes` long, cut at a character boundary.
fn prefix(s: &str, bytes: usize) -> &str {
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The whole lines of `s` that fit in `bytes`, ending with the blank line
/// a header block ends with.
fn prefix_lines(s: &str, bytes: usize) -> String {
    let start = prefix(s, bytes);
    let cut = match start.rfind('\n') {
        Some(i) if start.len() < s.len() => &start[..=i],
        _ => start,
    };
    format!("{}\r\n\r\n", cut.trim_end_matches(['\r', '\n']))
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

#[cfg(test)]
mod tests;
