//! A minimal blocking IMAP client for protocol-level assertions in tests.
//!
//! Why not the product's client: fixture self-tests and protocol tests must
//! observe the server independently of the code under test. This speaks just
//! enough IMAP4rev1 to send tagged commands and collect the raw response
//! (literals included), with a read timeout so a broken server fails the test
//! instead of hanging it.

use std::collections::HashMap;
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

// ----- helpers for fixtures that read a server over IMAP --------------------
//
// Courier and Cyrus keep their mail in formats the fixtures do not parse
// (Courier's keyword and UID files, Cyrus's index): their fixtures read and
// write a user's mail over IMAP instead, with these helpers.

/// One value of an untagged response: an atom (numbers and `NIL` included),
/// a string (quoted or literal, raw bytes) or a parenthesised list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Value>),
}

impl Value {
    /// An atom or string as text (lossy); `None` for lists and `NIL`.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Atom(a) if a.eq_ignore_ascii_case("NIL") => None,
            Value::Atom(a) => Some(a.clone()),
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            Value::List(_) => None,
        }
    }

    pub fn number(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

/// The untagged responses of `data` (as [`Response::data`] holds them), each
/// as the values after `* `. Responses whose rest is free text (`OK`, `NO`,
/// `BAD`, `BYE`, `PREAUTH`, `CAPABILITY`, ...) keep only their first atom.
/// Continuation requests (`+ ...`) are skipped.
pub fn parse_untagged(data: &[u8]) -> Vec<Vec<Value>> {
    const STRUCTURED: [&str; 9] = [
        "LIST",
        "LSUB",
        "STATUS",
        "NAMESPACE",
        "FLAGS",
        "SEARCH",
        "FETCH",
        "EXISTS",
        "RECENT",
    ];
    let mut p = Parser { data, pos: 0 };
    let mut out = Vec::new();
    while p.pos < data.len() {
        if !data[p.pos..].starts_with(b"* ") {
            p.skip_line();
            continue;
        }
        p.pos += 2;
        let mut values = Vec::new();
        // `* 3 FETCH (...)`, `* 4 EXISTS`: number first.
        let first = p.atom();
        let mut keyword = first.clone();
        values.push(Value::Atom(first.clone()));
        if first.bytes().all(|b| b.is_ascii_digit()) && p.peek() == Some(b' ') {
            p.pos += 1;
            keyword = p.atom();
            values.push(Value::Atom(keyword.clone()));
        }
        if STRUCTURED.iter().any(|k| k.eq_ignore_ascii_case(&keyword)) {
            loop {
                match p.peek() {
                    Some(b' ') => p.pos += 1,
                    Some(b'\r') | Some(b'\n') | None => break,
                    Some(_) => values.push(p.value()),
                }
            }
        }
        p.skip_line();
        out.push(values);
    }
    out
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn skip_line(&mut self) {
        match self.data[self.pos..].iter().position(|&b| b == b'\n') {
            Some(nl) => self.pos += nl + 1,
            None => self.pos = self.data.len(),
        }
    }

    /// An atom, including any `[...]` section (`BODY[]`, `BODY[HEADER]`).
    fn atom(&mut self) -> String {
        let start = self.pos;
        let mut depth = 0;
        while let Some(b) = self.peek() {
            match b {
                b'[' => depth += 1,
                b']' if depth > 0 => depth -= 1,
                b' ' | b'(' | b')' if depth == 0 => break,
                b'\r' | b'\n' => break,
                _ => {}
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.data[start..self.pos]).into_owned()
    }

    fn value(&mut self) -> Value {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b')') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b' ') => self.pos += 1,
                        // Unbalanced list at the end of the data: stop.
                        None => break,
                        Some(_) => items.push(self.value()),
                    }
                }
                Value::List(items)
            }
            Some(b'"') => {
                self.pos += 1;
                let mut s = Vec::new();
                while let Some(b) = self.peek() {
                    self.pos += 1;
                    match b {
                        b'\\' => {
                            if let Some(e) = self.peek() {
                                s.push(e);
                                self.pos += 1;
                            }
                        }
                        b'"' => break,
                        _ => s.push(b),
                    }
                }
                Value::Str(s)
            }
            Some(b'{') => {
                let close = self.data[self.pos..]
                    .iter()
                    .position(|&b| b == b'}')
                    .map(|i| self.pos + i)
                    .expect("literal without '}'");
                let len: usize = String::from_utf8_lossy(&self.data[self.pos + 1..close])
                    .trim_end_matches('+')
                    .parse()
                    .expect("literal length");
                // `{N}` CRLF, then N bytes.
                let mut from = close + 1;
                if self.data[from..].starts_with(b"\r\n") {
                    from += 2;
                } else if self.data[from..].starts_with(b"\n") {
                    from += 1;
                }
                let to = (from + len).min(self.data.len());
                self.pos = to;
                Value::Str(self.data[from..to].to_vec())
            }
            _ => {
                let atom = self.atom();
                if atom.is_empty() && self.pos < self.data.len() {
                    // A stray `)` or the like: step over it.
                    self.pos += 1;
                }
                Value::Atom(atom)
            }
        }
    }
}

/// One `LIST` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// As sent, e.g. `\HasNoChildren`, `\Noselect`, `\Sent`.
    pub attributes: Vec<String>,
    /// `None` for a flat namespace (`NIL`).
    pub delimiter: Option<char>,
    /// The server's name, decoded from modified UTF-7.
    pub name: String,
}

impl ListEntry {
    /// False for `\Noselect` / `\NonExistent` entries (placeholders).
    pub fn selectable(&self) -> bool {
        !self
            .attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"))
    }
}

/// One message read back with [`ImapConn::fetch_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    /// As sent (`\Recent` included), server order.
    pub flags: Vec<String>,
    /// INTERNALDATE as unix seconds.
    pub internal_date: i64,
    /// `BODY[]`.
    pub raw: Vec<u8>,
}

impl ImapConn {
    /// Like [`ImapConn::connect`], but from a chosen loopback source address
    /// (e.g. `127.0.0.2`), so a server's log can tell these sessions apart.
    pub fn connect_from(port: u16, source: std::net::Ipv4Addr) -> ImapConn {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        let stream = rt
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind((source, 0).into())?;
                let stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
                stream.into_std()
            })
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port} from {source}: {e}"));
        stream.set_nonblocking(false).expect("blocking socket");
        ImapConn::from_stream(stream)
    }

    /// Wraps a connected stream and reads the greeting.
    pub fn from_stream(stream: TcpStream) -> ImapConn {
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

    /// The local (client) address of the connection.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.writer.local_addr().expect("local addr")
    }

    /// APPEND with a synchronising literal (`{N}`, waiting for the server's
    /// `+`), for servers without LITERAL+ (Courier). A `NO`/`BAD` instead of
    /// the continuation is returned as the response.
    pub fn append_sync(
        &mut self,
        mailbox: &str,
        flags: &[String],
        internal_date: Option<i64>,
        message: &[u8],
    ) -> Response {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        let mut cmd = format!("{tag} APPEND {} ({})", quote(&mutf7_encode(mailbox)), flags.join(" "));
        if let Some(t) = internal_date {
            cmd.push_str(&format!(" \"{}\"", imap_date(t)));
        }
        cmd.push_str(&format!(" {{{}}}\r\n", message.len()));
        self.writer.write_all(cmd.as_bytes()).expect("send APPEND");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read continuation");
        if !line.starts_with('+') {
            let text = line
                .strip_prefix(&format!("{tag} "))
                .unwrap_or(&line)
                .trim_end()
                .to_string();
            let status = text.split(' ').next().unwrap_or_default().to_string();
            return Response {
                status,
                text,
                data: Vec::new(),
            };
        }
        self.writer.write_all(message).expect("send literal");
        self.writer.write_all(b"\r\n").expect("send CRLF");
        self.read_response(&tag)
    }

    /// The raw `* NAMESPACE ...` line (without CRLF).
    pub fn namespace(&mut self) -> String {
        let r = self.command("NAMESPACE").expect_ok("NAMESPACE");
        r.data_text()
            .lines()
            .find(|l| l.starts_with("* NAMESPACE"))
            .unwrap_or_else(|| panic!("no NAMESPACE data in {:?}", r.data_text()))
            .trim_end()
            .to_string()
    }

    /// The capabilities from a `CAPABILITY` command (upper case).
    pub fn capabilities(&mut self) -> Vec<String> {
        let r = self.command("CAPABILITY").expect_ok("CAPABILITY");
        let text = r.data_text();
        let line = text
            .lines()
            .find(|l| l.starts_with("* CAPABILITY "))
            .unwrap_or_else(|| panic!("no CAPABILITY data in {text:?}"));
        line["* CAPABILITY ".len()..]
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect()
    }

    /// `LIST reference pattern` (names decoded from modified UTF-7).
    pub fn list(&mut self, reference: &str, pattern: &str) -> Vec<ListEntry> {
        let r = self
            .command(&format!("LIST {} {}", quote(reference), quote(pattern)))
            .expect_ok("LIST");
        parse_untagged(&r.data)
            .into_iter()
            .filter(|v| {
                v.first()
                    .and_then(Value::text)
                    .is_some_and(|k| k.eq_ignore_ascii_case("LIST"))
            })
            .map(|v| {
                let attributes = v
                    .get(1)
                    .and_then(Value::list)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::text)
                    .collect();
                let delimiter = v.get(2).and_then(Value::text).and_then(|d| d.chars().next());
                let name = v.get(3).and_then(Value::text).expect("LIST without a name");
                ListEntry {
                    attributes,
                    delimiter,
                    name: mutf7_decode(&name),
                }
            })
            .collect()
    }

    /// `STATUS mailbox (items)` as (item, number) pairs in upper case.
    pub fn status(&mut self, mailbox: &str, items: &[&str]) -> HashMap<String, u64> {
        let r = self
            .command(&format!(
                "STATUS {} ({})",
                quote(&mutf7_encode(mailbox)),
                items.join(" ")
            ))
            .expect_ok("STATUS");
        let mut out = HashMap::new();
        for v in parse_untagged(&r.data) {
            if v.first()
                .and_then(Value::text)
                .is_some_and(|k| k.eq_ignore_ascii_case("STATUS"))
                && let Some(list) = v.get(2).and_then(Value::list)
            {
                for pair in list.chunks(2) {
                    if let [k, n] = pair
                        && let (Some(k), Some(n)) = (k.text(), n.number())
                    {
                        out.insert(k.to_ascii_uppercase(), n);
                    }
                }
            }
        }
        out
    }

    /// EXAMINEs `mailbox` (read-only: flags and the server's state stay as
    /// they are) and fetches every message: UID, flags, INTERNALDATE and
    /// `BODY.PEEK[]`, in UID order.
    pub fn fetch_all(&mut self, mailbox: &str) -> Vec<FetchedMessage> {
        let r = self
            .command(&format!("EXAMINE {}", quote(&mutf7_encode(mailbox))))
            .expect_ok("EXAMINE");
        let exists = parse_untagged(&r.data)
            .iter()
            .filter(|v| {
                v.get(1)
                    .and_then(Value::text)
                    .is_some_and(|k| k.eq_ignore_ascii_case("EXISTS"))
            })
            .filter_map(|v| v.first().and_then(Value::number))
            .next_back()
            .unwrap_or(0);
        if exists == 0 {
            return Vec::new();
        }
        let r = self
            .command("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])")
            .expect_ok("UID FETCH");
        // Merge by sequence number: a server may split one message's items
        // over several FETCH responses.
        #[derive(Default)]
        struct Partial {
            uid: Option<u32>,
            flags: Vec<String>,
            date: Option<i64>,
            raw: Option<Vec<u8>>,
        }
        let mut by_seq: std::collections::BTreeMap<u64, Partial> = Default::default();
        for v in parse_untagged(&r.data) {
            let (Some(seq), Some(true), Some(items)) = (
                v.first().and_then(Value::number),
                v.get(1).and_then(Value::text).map(|k| k.eq_ignore_ascii_case("FETCH")),
                v.get(2).and_then(Value::list),
            ) else {
                continue;
            };
            let entry = by_seq.entry(seq).or_default();
            for pair in items.chunks(2) {
                let [key, value] = pair else { continue };
                let key = key.text().unwrap_or_default().to_ascii_uppercase();
                match key.as_str() {
                    "UID" => entry.uid = value.number().map(|n| n as u32),
                    "FLAGS" => {
                        entry.flags = value
                            .list()
                            .unwrap_or_default()
                            .iter()
                            .filter_map(Value::text)
                            .collect();
                    }
                    "INTERNALDATE" => {
                        let text = value.text().unwrap_or_default();
                        entry.date = chrono::DateTime::parse_from_str(text.trim(), "%d-%b-%Y %H:%M:%S %z")
                            .ok()
                            .map(|d| d.timestamp());
                    }
                    "BODY[]" => {
                        if let Value::Str(bytes) = value {
                            entry.raw = Some(bytes.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out: Vec<FetchedMessage> = by_seq
            .into_iter()
            .map(|(seq, p)| FetchedMessage {
                uid: p.uid.unwrap_or_else(|| panic!("{mailbox}: no UID for message {seq}")),
                flags: p.flags,
                internal_date: p
                    .date
                    .unwrap_or_else(|| panic!("{mailbox}: no INTERNALDATE for message {seq}")),
                raw: p
                    .raw
                    .unwrap_or_else(|| panic!("{mailbox}: no BODY[] for message {seq}")),
            })
            .collect();
        out.sort_by_key(|m| m.uid);
        out
    }
}

/// How a server names a user's folders, for fixtures whose API names folders
/// like the Dovecot fixture's: UTF-8, `/` as the hierarchy separator, `INBOX`
/// for the inbox, relative to the personal namespace (`Sent`, never
/// `INBOX.Sent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderNaming {
    /// Personal namespace prefix, e.g. `INBOX.` or `""`.
    pub prefix: String,
    pub separator: char,
    /// Prefixes of the other users' and shared namespaces (`Other Users/`),
    /// whose folders are not the user's own.
    pub others: Vec<String>,
}

impl FolderNaming {
    /// Fixture name -> the server's name (UTF-8): `Sent` -> `INBOX.Sent`.
    /// Panics when a component contains the server's separator.
    pub fn to_server(&self, folder: &str) -> String {
        if folder.eq_ignore_ascii_case("INBOX") {
            return "INBOX".to_string();
        }
        let parts: Vec<&str> = folder.split('/').collect();
        assert!(
            parts.iter().all(|p| !p.is_empty() && !p.contains(self.separator)),
            "folder {folder:?} has an empty component or one containing the server's separator {:?}",
            self.separator
        );
        format!("{}{}", self.prefix, parts.join(&self.separator.to_string()))
    }

    /// The server's name -> fixture name; `None` outside the personal
    /// namespace.
    pub fn to_fixture(&self, name: &str) -> Option<String> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Some("INBOX".to_string());
        }
        if self.others.iter().any(|o| name.starts_with(o.as_str())) {
            return None;
        }
        let rest = name.strip_prefix(self.prefix.as_str())?;
        Some(rest.split(self.separator).collect::<Vec<_>>().join("/"))
    }
}
