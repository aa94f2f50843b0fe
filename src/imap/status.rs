//! STATUS (MESSAGES SIZE) for many folders at once (RFC 8438), one of the
//! two commands (with NAMESPACE) whose answers are read and parsed here
//! rather than by the IMAP library: its parser does not know the SIZE attribute and would reject
//! the answer. Kept apart from [`conn`](super::conn) because it writes and
//! reads the raw stream, with its own framing of lines and literals.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::classify::{classify_bye, io_error, timed};
use super::conn::Conn;
use super::wire::quote;
use crate::error::{Error, Result};

impl Conn {
    /// STATUS (MESSAGES SIZE) of many folders in one round trip, on servers
    /// that offer STATUS=SIZE (RFC 8438): `(messages, bytes)` per name, in
    /// order, `None` where the server refused that folder. Errors with an
    /// item error when the server lacks the extension.
    ///
    /// The IMAP parser underneath does not know the SIZE attribute and
    /// would reject the answer, so these commands are written and their
    /// answers read and parsed here, straight on the connection. That is
    /// safe between commands: the server sends nothing unasked then, so no
    /// bytes sit in the parser's buffer and none are read past the last
    /// tagged answer.
    pub async fn status_sizes(&mut self, wire_names: &[String]) -> Result<Vec<Option<(u32, u64)>>> {
        if !self.has_capability("STATUS=SIZE") {
            return Err(Error::item("the server does not offer STATUS=SIZE"));
        }
        if wire_names.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.status_sizes_inner(wire_names).await;
        self.broken_if_retryable(result)
    }

    async fn status_sizes_inner(&mut self, wire_names: &[String]) -> Result<Vec<Option<(u32, u64)>>> {
        let t = self.timeout;
        let mut commands = String::new();
        for (i, name) in wire_names.iter().enumerate() {
            commands.push_str(&format!("cs{i} STATUS {} (MESSAGES SIZE)\r\n", quote(name)));
        }
        let stream = self.session.get_mut();
        timed(t, "STATUS", async {
            stream.write_all(commands.as_bytes()).await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("STATUS", e))?;
        let mut found: std::collections::HashMap<String, (u32, u64)> = std::collections::HashMap::new();
        let mut answered = vec![false; wire_names.len()];
        let mut refused = vec![false; wire_names.len()];
        let mut pending = wire_names.len();
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 8192];
        while pending > 0 {
            while let Some(len) = complete_response(&buf) {
                let line: Vec<u8> = buf.drain(..len).collect();
                let line = &line[..line.len() - 2];
                if let Some(rest) = line.strip_prefix(b"* STATUS ") {
                    if let Some((name, counts)) = parse_status_size(rest) {
                        found.insert(name, counts);
                    }
                } else if line.starts_with(b"* BYE") {
                    return Err(classify_bye("STATUS", &String::from_utf8_lossy(&line[5..])));
                } else if let Some(rest) = line.strip_prefix(b"cs") {
                    let text = String::from_utf8_lossy(rest);
                    let (index, outcome) = text.split_once(' ').unwrap_or((&text, ""));
                    if let Ok(i) = index.parse::<usize>()
                        && i < answered.len()
                        && !answered[i]
                    {
                        answered[i] = true;
                        refused[i] = !outcome.starts_with("OK");
                        pending -= 1;
                    }
                }
            }
            if pending == 0 {
                break;
            }
            let stream = self.session.get_mut();
            let n = timed(t, "STATUS", stream.read(&mut chunk))
                .await?
                .map_err(|e| io_error("STATUS", e))?;
            if n == 0 {
                return Err(Error::transient("STATUS: the server closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(wire_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if refused[i] {
                    return None;
                }
                found.get(name).copied().or_else(|| {
                    // The server may spell INBOX its own way.
                    name.eq_ignore_ascii_case("INBOX")
                        .then(|| {
                            found
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("INBOX"))
                                .map(|(_, v)| *v)
                        })
                        .flatten()
                })
            })
            .collect())
    }
}

/// Length of the first complete response line in `buf` (CRLF included),
/// literals (`{n}` or `{n+}` before a CRLF, then n bytes) included.
pub(super) fn complete_response(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + buf[from..].windows(2).position(|w| w == b"\r\n")?;
        let line = &buf[from..at];
        let literal = line
            .strip_suffix(b"}")
            .and_then(|l| l.iter().rposition(|&b| b == b'{').map(|open| &l[open + 1..]))
            .map(|n| n.strip_suffix(b"+").unwrap_or(n))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
        match literal {
            Some(n) => {
                from = at + 2 + n;
                if from > buf.len() {
                    return None;
                }
            }
            None => return Some(at + 2),
        }
    }
}

/// `<mailbox> (MESSAGES n SIZE m)` from an untagged STATUS answer; the
/// mailbox as a quoted string, a literal or an atom.
fn parse_status_size(rest: &[u8]) -> Option<(String, (u32, u64))> {
    let (name, after) = match rest.first()? {
        b'"' => {
            let mut name = Vec::new();
            let mut i = 1;
            loop {
                match *rest.get(i)? {
                    b'\\' => {
                        name.push(*rest.get(i + 1)?);
                        i += 2;
                    }
                    b'"' => break,
                    b => {
                        name.push(b);
                        i += 1;
                    }
                }
            }
            (name, &rest[i + 1..])
        }
        b'{' => {
            let close = rest.iter().position(|&b| b == b'}')?;
            let digits = std::str::from_utf8(&rest[1..close]).ok()?;
            let n: usize = digits.trim_end_matches('+').parse().ok()?;
            let start = close + 3;
            (rest.get(start..start + n)?.to_vec(), &rest[start + n..])
        }
        _ => {
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            (rest[..end].to_vec(), &rest[end..])
        }
    };
    let text = std::str::from_utf8(after).ok()?;
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let words: Vec<&str> = inner.split_whitespace().collect();
    let mut messages = None;
    let mut size = None;
    for pair in words.chunks(2) {
        match pair {
            [k, v] if k.eq_ignore_ascii_case("MESSAGES") => messages = v.parse().ok(),
            [k, v] if k.eq_ignore_ascii_case("SIZE") => size = v.parse().ok(),
            _ => {}
        }
    }
    Some((String::from_utf8(name).ok()?, (messages?, size?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_size_answers_are_parsed_with_quoted_literal_and_atom_names() {
        assert_eq!(
            parse_status_size(b"\"Kunden & Partner\" (MESSAGES 3 SIZE 4096)"),
            Some(("Kunden & Partner".to_owned(), (3, 4096)))
        );
        assert_eq!(
            parse_status_size(b"INBOX (SIZE 10 MESSAGES 1)"),
            Some(("INBOX".to_owned(), (1, 10)))
        );
        assert_eq!(
            parse_status_size(b"{5}\r\na\"b\\c (MESSAGES 0 SIZE 0)"),
            Some(("a\"b\\c".to_owned(), (0, 0)))
        );
        assert_eq!(parse_status_size(b"\"x\" (MESSAGES 1)"), None);
        let buf = b"* STATUS {3}\r\nabc (MESSAGES 1 SIZE 2)\r\ncs0 OK done\r\n";
        let first = complete_response(buf).unwrap();
        assert_eq!(&buf[..first], b"* STATUS {3}\r\nabc (MESSAGES 1 SIZE 2)\r\n");
        assert_eq!(complete_response(&buf[first..]), Some(buf.len() - first));
        assert_eq!(complete_response(b"* STATUS {30}\r\nabc"), None);
    }
}
