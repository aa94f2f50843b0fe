//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding IMAP uses for folder names:
//! printable ASCII stands for itself (`&` as `&-`), everything else is UTF-16
//! in a base64 variant with `,` for `/`, between `&` and `-`.
//!
//! A module of its own, beside [`imap`](crate::imap) rather than inside
//! it: Gmail labels, the Maildir target's folder names and verification
//! use the encoding without any IMAP connection.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a UTF-8 folder name for the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out.push('-');
    units.clear();
}

/// Decodes a wire folder name. Names that are not valid modified UTF-7 are
/// returned as they are: some servers send raw UTF-8, and a folder must never
/// be dropped because its name is odd.
pub fn decode(wire: &str) -> String {
    decode_strict(wire).unwrap_or_else(|| wire.to_owned())
}

fn decode_strict(wire: &str) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_run(encoded)?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn decode_run(encoded: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut bytes = Vec::new();
    for c in encoded.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_from_rfc_3501() {
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"), "~peter/mail/台北/日本語");
    }

    #[test]
    fn round_trips_accents_ampersands_and_astral_characters() {
        for name in ["Répertoire", "A & B", "&", "Entwürfe/Ältere", "📁 Box", "plain", ""] {
            assert_eq!(decode(&encode(name)), name, "{name}");
        }
        assert_eq!(encode("A & B"), "A &- B");
        assert_eq!(encode("Répertoire"), "R&AOk-pertoire");
    }

    #[test]
    fn invalid_input_is_kept_verbatim() {
        assert_eq!(decode("Broken&AOk"), "Broken&AOk");
        assert_eq!(decode("Grüße"), "Grüße");
    }
}
