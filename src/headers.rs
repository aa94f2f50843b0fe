//! Reading a message's header block, one way for the whole crate: the
//! source scans (IMAP header fetches, the Takeout mbox index), the transform
//! stage (the Message-ID each copy records, the Subject a failure is
//! reported with) and the targets' look-ups all read headers here, so a
//! folded, oddly cased or missing header means the same thing everywhere.
//! Pure functions over bytes; decoding of encoded words (RFC 2047) is left
//! to mail-parser.

/// The longest Subject kept for reports (in characters).
pub const SUBJECT_MAX_CHARS: usize = 200;

/// The header block of a raw message: everything before the first empty
/// line (CRLF or bare LF), or all of it when there is none.
pub fn block(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"\n") || raw.starts_with(b"\r\n") {
        return &[];
    }
    let mut at = 0;
    while let Some(p) = raw[at..].iter().position(|&b| b == b'\n') {
        let line_end = at + p + 1;
        match raw.get(line_end..) {
            Some([b'\n', ..]) | Some([b'\r', b'\n', ..]) => return &raw[..line_end],
            _ => at = line_end,
        }
    }
    raw
}

/// What tells a message without a Message-ID from others of its size, the
/// same for the whole message and for its header section alone (IMAP
/// `BODY[HEADER]`): a SHA-256 of the header block, whose Received, Date and
/// other lines differ between messages. Recorded when a copy is made, and
/// read from the header section of a message found in another folder, so
/// its copy is moved instead of made again.
pub fn content_key(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(block(raw));
    let mut key = String::with_capacity(7 + 64);
    key.push_str("sha256:");
    for b in digest {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The first header called `name` (any case) in the header block at the
/// start of `raw`, unfolded and trimmed; reading stops at the first empty
/// line, so a body never answers for a header.
pub fn value(raw: &[u8], name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if let Some(v) = value.as_mut() {
            if text.starts_with([' ', '\t']) {
                v.push_str(text.trim());
                continue;
            }
            break;
        }
        if let Some((n, rest)) = text.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            value = Some(rest.trim().to_owned());
        }
    }
    value
}

/// The Message-ID (unfolded, angle brackets kept); `None` when there is
/// none or it is empty.
pub fn message_id(header: &[u8]) -> Option<String> {
    let v = value(header, "message-id")?;
    let v = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a..=b].to_owned(),
        _ => v,
    };
    (!v.is_empty()).then_some(v)
}

/// The decoded Subject (RFC 2047), white space folded, control characters
/// dropped, cut to [`SUBJECT_MAX_CHARS`]: for reports only.
pub fn subject(header: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(header)?;
    tidy_subject(parsed.subject()?)
}

/// A decoded subject in the form [`subject`] gives: white space folded,
/// control characters dropped, cut to [`SUBJECT_MAX_CHARS`]. Lets a
/// subject another system decoded (Exchange's) be compared with ours.
pub fn tidy_subject(subject: &str) -> Option<String> {
    let subject: String = subject
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if subject.is_empty() {
        return None;
    }
    Some(match subject.char_indices().nth(SUBJECT_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &subject[..at]),
        None => subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_key_is_the_same_for_the_message_and_its_header_section() {
        let whole = b"Received: from a\r\nSubject: hi\r\n\r\nbody\r\n";
        let section = b"Received: from a\r\nSubject: hi\r\n\r\n";
        assert_eq!(content_key(whole), content_key(section));
        assert!(content_key(whole).starts_with("sha256:") && content_key(whole).len() == 7 + 64);
        // Another body, same headers: the same message filed twice is
        // still told apart by size, which the key goes with.
        assert_eq!(
            content_key(whole),
            content_key(b"Received: from a\r\nSubject: hi\r\n\r\nother\r\n")
        );
        assert_ne!(
            content_key(whole),
            content_key(b"Received: from b\r\nSubject: hi\r\n\r\nbody\r\n")
        );
    }

    #[test]
    fn the_header_block_ends_at_the_first_empty_line() {
        assert_eq!(block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(block(b"A: 1\nB: 2\n\nbody"), b"A: 1\nB: 2\n");
        assert_eq!(block(b"A: 1\r\n\nbody"), b"A: 1\r\n", "mixed line ends");
        assert_eq!(block(b"A: 1\r\nno body"), b"A: 1\r\nno body");
        assert_eq!(block(b"\r\nMessage-ID: <body@x>"), b"", "no header at all");
        let raw = b"Subject: x\r\nMessage-ID:\r\n <id@host>\r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(message_id(block(raw)).as_deref(), Some("<id@host>"));
    }

    #[test]
    fn message_ids_unfold_and_keep_brackets() {
        assert_eq!(message_id(b"Message-ID: <a@b>\r\n\r\n").as_deref(), Some("<a@b>"));
        assert_eq!(
            message_id(b"message-id:\r\n <long@host>\r\n\r\n").as_deref(),
            Some("<long@host>")
        );
        assert_eq!(message_id(b"\r\n"), None);
        assert_eq!(message_id(b"Message-ID:\r\n\r\n"), None, "empty");
        // The body never answers for a header.
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n"), None);
    }

    #[test]
    fn values_unfold_and_match_any_case() {
        let raw = b"X-Gmail-Labels: Inbox,\r\n \"Work, Stuff\"\r\nSubject: s\r\n\r\nx-gmail-labels: no\r\n";
        assert_eq!(value(raw, "x-gmail-labels").as_deref(), Some("Inbox,\"Work, Stuff\""));
        assert_eq!(value(raw, "SUBJECT").as_deref(), Some("s"));
        assert_eq!(value(raw, "missing"), None);
    }

    #[test]
    fn subjects_are_decoded_and_kept_short() {
        assert_eq!(
            subject(b"Message-ID: <a@b>\r\nSubject: =?UTF-8?B?w4ljb2xlcw==?= et\r\n =?ISO-8859-1?Q?caf=E9?=\r\n\r\n")
                .as_deref(),
            Some("Écoles et café")
        );
        assert_eq!(subject(b"Message-ID: <a@b>\r\n\r\n"), None);
        let long = format!("Subject: {}\r\n\r\n", "x".repeat(500));
        assert_eq!(subject(long.as_bytes()).unwrap().chars().count(), SUBJECT_MAX_CHARS + 1);
    }
}
