//! A minimal blocking IMAP client for protocol-level assertions in tests.
//!
//! Why not the product's client: fixture self-tests and protocol tests must
//! observe the server independently of the code under test. This speaks just
//! enough IMAP4rev1 to send tagged commands and collect the raw response
//! (literals included), with a read timeout so a broken server fails the test
//! instead of hanging it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;

/// A tagged command's outcome plus everything the server sent before it.
#[derive(Debug, Clone)]
pub struct Response {
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The tagged completion line without the tag, e.g. `OK Logged in`.
    pub text: String,
    /// Raw untagged data (and continuation requests), literals included.
    pub data: Vec<u8>,
}

impl Response {
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }

    /// `data` as (lossy) text, for `contains` checks.
    pub fn data_text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// Panics unless the command completed with OK.
    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Response {
        assert!(
            self.is_ok(),
            "{what}: {} {}\n{}",
            self.status,
            self.text,
            self.data_text()
        );
        self
    }
}

pub struct ImapConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    /// The server's greeting line.
    pub greeting: String,
}

impl ImapConn {
    /// Connects to 127.0.0.1:port and reads the greeting.
    pub fn connect(port: u16) -> ImapConn {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("set timeout");
        let writer = stream.try_clone().expect("clone stream");
        let mut reader = BufReader::new(stream);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).expect("read greeting");
        assert!(greeting.starts_with("* OK"), "bad greeting {greeting:?}");
        ImapConn {
            reader,
            writer,
            next_tag: 1,
            greeting,
        }
    }

    /// Sends `TAG command` and reads up to the tagged completion.
    pub fn command(&mut self, command: &str) -> Response {
        self.command_bytes(command.as_bytes())
    }

    /// Like [`ImapConn::command`] for commands with raw bytes (e.g. literals,
    /// which should use the non-synchronising `{n+}` form; Dovecot offers
    /// LITERAL+).
    pub fn command_bytes(&mut self, command: &[u8]) -> Response {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        let mut line = Vec::with_capacity(command.len() + 16);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.writer.write_all(&line).expect("send command");
        self.read_response(&tag)
    }

    /// LOGIN with quoted credentials.
    pub fn login(&mut self, user: &str, password: &str) -> Response {
        self.command(&format!("LOGIN {} {}", quote(user), quote(password)))
    }

    /// APPEND with flags and an optional INTERNALDATE (unix seconds).
    /// `mailbox` is the server's name (UTF-8; encoded to modified UTF-7 here).
    pub fn append(&mut self, mailbox: &str, flags: &[String], internal_date: Option<i64>, message: &[u8]) -> Response {
        let mut cmd = format!("APPEND {} ({})", quote(&mutf7_encode(mailbox)), flags.join(" "));
        if let Some(t) = internal_date {
            cmd.push_str(&format!(" \"{}\"", imap_date(t)));
        }
        cmd.push_str(&format!(" {{{}+}}\r\n", message.len()));
        let mut bytes = cmd.into_bytes();
        bytes.extend_from_slice(message);
        self.command_bytes(&bytes)
    }

    /// LOGOUT; the server closes the connection afterwards.
    pub fn logout(mut self) -> Response {
        self.command("LOGOUT")
    }

    fn read_response(&mut self, tag: &str) -> Response {
        let mut data = Vec::new();
        let mut at_line_start = true;
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).expect("read from IMAP server");
            assert!(
                n > 0,
                "IMAP server closed the connection; got so far:\n{}",
                String::from_utf8_lossy(&data)
            );
            if at_line_start && line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                let text = String::from_utf8_lossy(&line[tag.len() + 1..]).trim_end().to_string();
                let status = text.split(' ').next().unwrap_or_default().to_string();
                return Response { status, text, data };
            }
            data.extend_from_slice(&line);
            // A line ending in {N} announces N raw bytes, after which the
            // same logical line continues.
            match literal_len(&line) {
                Some(len) => {
                    let mut lit = vec![0; len];
                    self.reader.read_exact(&mut lit).expect("read literal");
                    data.extend_from_slice(&lit);
                    at_line_start = false;
                }
                None => at_line_start = true,
            }
        }
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = std::str::from_utf8(&line[open + 1..]).ok()?;
    digits.trim_end_matches('+').parse().ok()
}

/// IMAP quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// INTERNALDATE form: `01-Jan-2024 10:00:00 +0000`.
pub fn imap_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .expect("valid date")
        .format("%d-%b-%Y %H:%M:%S +0000")
        .to_string()
}

/// Modified UTF-7 (RFC 3501 5.1.3) for mailbox names on the wire.
pub fn mutf7_encode(s: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine.encode(bytes).replace('/', ","));
        out.push('-');
        pending.clear();
    };
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Inverse of [`mutf7_encode`] (for LIST output).
pub fn mutf7_decode(s: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-').unwrap_or(after.len());
        let chunk = &after[..end];
        if chunk.is_empty() {
            out.push('&');
        } else {
            let bytes = engine
                .decode(chunk.replace(',', "/"))
                .unwrap_or_else(|e| panic!("bad modified UTF-7 {s:?}: {e}"));
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            out.push_str(&String::from_utf16_lossy(&units));
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The first literal (`{N}` + N bytes) in a response's data, e.g. the body of
/// `UID FETCH n BODY.PEEK[]`.
pub fn first_literal(data: &[u8]) -> Option<Vec<u8>> {
    let mut start = 0;
    while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
        let line = &data[start..start + nl + 1];
        if let Some(len) = literal_len(line) {
            let from = start + nl + 1;
            return data.get(from..from + len).map(<[u8]>::to_vec);
        }
        start += nl + 1;
    }
    None
}

/// The INTERNALDATE of a FETCH response as unix seconds.
pub fn internaldate(data: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(data);
    let at = text.find("INTERNALDATE \"")? + "INTERNALDATE \"".len();
    let value = &text[at..at + text[at..].find('"')?];
    chrono::DateTime::parse_from_str(value.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}
