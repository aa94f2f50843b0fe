//! IMAP syntax both sides need outside a command: quoting a mailbox name,
//! writing and reading INTERNALDATE, and reading the UID out of an
//! APPENDUID answer (RFC 4315). Pure functions, no connection.

use async_imap::imap_proto::{self, ResponseCode};

/// Quotes a string for an IMAP command (mailbox names are already 7-bit
/// after modified UTF-7 encoding).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// IMAP date-time ("17-Jul-1996 02:44:25 +0000") for APPEND.
pub fn format_internal_date(unix: i64) -> String {
    let dt = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    dt.format("%d-%b-%Y %H:%M:%S +0000").to_string()
}

/// Parses an IMAP INTERNALDATE into unix seconds.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}

/// (UIDVALIDITY, UID) of the first message an APPENDUID answer names.
pub(super) fn first_append_uid(code: Option<&ResponseCode>) -> Option<(u32, u32)> {
    match code {
        Some(ResponseCode::AppendUid(validity, uids)) => uids.first().map(|u| match u {
            imap_proto::rfc4315::UidSetMember::Uid(u) => (*validity, *u),
            imap_proto::rfc4315::UidSetMember::UidRange(r) => (*validity, *r.start()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates_round_trip() {
        assert_eq!(parse_internal_date("17-Jul-1996 02:44:25 -0700"), Some(837_596_665));
        assert_eq!(parse_internal_date(" 7-Jul-1996 02:44:25 +0000"), Some(836_707_465));
        let s = format_internal_date(837_596_665);
        assert_eq!(s, "17-Jul-1996 09:44:25 +0000");
        assert_eq!(parse_internal_date(&s), Some(837_596_665));
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
