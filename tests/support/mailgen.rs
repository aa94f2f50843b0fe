//! Deterministic test mail.
//!
//! Why generated: migration tests need thousands of varied but reproducible
//! messages (same seed, same bytes) to compare source and target byte for
//! byte, and benchmarks need a controllable size distribution. The shapes
//! mirror what real mailboxes contain: plain text, multipart/alternative,
//! attachments of varied sizes, RFC 2047 subjects and names in several
//! scripts, flags and keywords, and INTERNALDATEs spread over five years (all
//! distinct, in shuffled order, so newest-first ordering is observable).
//! All generated messages use CRLF line ends, as IMAP servers store them.
//!
//! [`odd_corpus`] adds hand-written real-world oddities from
//! `tests/corpus/odd/` (stored byte-exact: see `tests/corpus/.gitattributes`).

use std::fmt;
use std::path::PathBuf;

use base64::Engine;

/// A message to deliver: exact bytes, IMAP flags, INTERNALDATE (unix secs).
#[derive(Clone, PartialEq, Eq)]
pub struct GenMessage {
    pub raw: Vec<u8>,
    /// IMAP form (`\Seen`, `$Label1`), canonical order (see [`sort_flags`]).
    pub flags: Vec<String>,
    pub internal_date: i64,
}

impl fmt::Debug for GenMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenMessage")
            .field("len", &self.raw.len())
            .field("message_id", &message_id(&self.raw))
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .finish()
    }
}

/// 2019-01-01T00:00:00Z: generated INTERNALDATEs lie in the five years after.
pub const DATES_FROM: i64 = 1_546_300_800;
pub const DATES_SPAN: i64 = 5 * 365 * 86_400;

const SYSTEM_FLAG_ORDER: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// Canonical flag order used by the fixture everywhere: system flags as in
/// RFC 3501's list, then keywords alphabetically; duplicates removed.
pub fn sort_flags(flags: &mut Vec<String>) {
    let rank = |f: &String| {
        SYSTEM_FLAG_ORDER
            .iter()
            .position(|s| s.eq_ignore_ascii_case(f))
            .unwrap_or(SYSTEM_FLAG_ORDER.len())
    };
    flags.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    flags.dedup();
}

/// `count` messages of about `avg_size` bytes on average, fully determined by
/// `seed`. Message-IDs are unique across seeds
/// (`<SEED.INDEX.RANDOM@gen.cutover.test>`).
pub fn generate(seed: u64, count: usize, avg_size: usize) -> Vec<GenMessage> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_c0de_cafe_f00d);
    // Distinct dates: one per equal slice of the span, then shuffled so the
    // delivery (UID) order is not the date order.
    let step = (DATES_SPAN / count.max(1) as i64).max(1);
    let mut dates: Vec<i64> = (0..count as i64)
        .map(|i| DATES_FROM + i * step + rng.i64(0..step))
        .collect();
    rng.shuffle(&mut dates);
    dates
        .into_iter()
        .enumerate()
        .map(|(i, date)| generate_one(&mut rng, seed, i, avg_size.max(200), date))
        .collect()
}

/// A valid MIME message of exactly `bytes` bytes: a short text part and one
/// base64 attachment filling the rest (e.g. `36 * 1024 * 1024 + 1024` to
/// exceed a 36 MiB limit). Panics below 2 KiB.
pub fn big_message(bytes: usize, seed: u64) -> GenMessage {
    assert!(bytes >= 2048, "big_message needs at least 2048 bytes");
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xb16_b16);
    let boundary = format!("=_big_{seed:x}_{bytes}");
    let date = 1_717_200_000 + (seed % 1000) as i64 * 60; // June 2024
    let head = format!(
        "From: Big Sender <big.sender@example.org>\r\n\
         To: Recipient <recipient@example.test>\r\n\
         Subject: Large attachment ({bytes} bytes)\r\n\
         Date: {}\r\n\
         Message-ID: <big.{seed:x}.{bytes}@gen.cutover.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
         \r\n\
         This is a multi-part message in MIME format.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         The attached file is large on purpose.\r\n",
        rfc2822_date(date - 120, 0)
    );
    let mid = format!(
        "\r\n--{boundary}\r\n\
         Content-Type: application/octet-stream; name=\"large.bin\"\r\n\
         Content-Disposition: attachment; filename=\"large.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n"
    );
    let tail = format!("--{boundary}--\r\n");
    let fixed = head.len() + mid.len() + tail.len();
    assert!(fixed + 64 < bytes, "big_message: {bytes} bytes is too small");
    let room = bytes - fixed;
    // Largest attachment whose encoding fits, leaving a padding p != 1 (a
    // padding line needs at least its CRLF).
    let mut raw_len = (room / 4) * 3;
    let pad = loop {
        let enc = base64_lines_len(raw_len);
        if enc <= room && room - enc != 1 {
            break room - enc;
        }
        raw_len -= 1;
    };
    let mut out = Vec::with_capacity(bytes);
    out.extend_from_slice(head.as_bytes());
    // Padding lines inside the text part.
    let mut left = pad;
    while left > 0 {
        let mut len = left.min(78);
        if left - len == 1 {
            len -= 1;
        }
        out.extend(std::iter::repeat_n(b'.', len - 2));
        out.extend_from_slice(b"\r\n");
        left -= len;
    }
    out.extend_from_slice(mid.as_bytes());
    let mut data = vec![0u8; raw_len];
    rng.fill(&mut data);
    push_base64_lines(&mut out, &data);
    out.extend_from_slice(tail.as_bytes());
    assert_eq!(out.len(), bytes, "big_message size arithmetic");
    GenMessage {
        raw: out,
        flags: vec!["\\Seen".to_string()],
        internal_date: date,
    }
}

/// The odd-MIME corpus: `(file name, message)` for every
/// `tests/corpus/odd/*.eml`, sorted by name, bytes exactly as stored. Each
/// gets a fixed INTERNALDATE (one per day from 2022-03-01, in name order) and
/// fixed flags (`\Seen`, plus `\Flagged` on every fifth, `\Answered` on every
/// seventh).
pub fn odd_corpus() -> Vec<(String, GenMessage)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/odd");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let raw = std::fs::read(dir.join(&name)).expect("read corpus file");
            let mut flags = vec!["\\Seen".to_string()];
            if i % 5 == 0 {
                flags.push("\\Flagged".to_string());
            }
            if i % 7 == 3 {
                flags.push("\\Answered".to_string());
            }
            sort_flags(&mut flags);
            let msg = GenMessage {
                raw,
                flags,
                internal_date: 1_646_092_800 + i as i64 * 86_400 + 3_600,
            };
            (name, msg)
        })
        .collect()
}

/// `raw` with every LF not preceded by CR turned into CRLF: the form in which
/// an IMAP server (Dovecot included) serves a message stored with bare LFs.
/// Identity for well-formed CRLF mail.
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The first Message-ID header's value, trimmed (angle brackets kept), from
/// the header section (CRLF or LF line ends, folded lines unfolded).
pub fn message_id(raw: &[u8]) -> Option<String> {
    let mut value: Option<String> = None;
    let mut in_mid = false;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // end of headers
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if in_mid && let Some(v) = value.as_mut() {
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        if value.is_some() {
            break; // the first Message-ID header is complete
        }
        in_mid = false;
        if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            value = Some(String::from_utf8_lossy(&line[11..]).trim().to_string());
            in_mid = true;
        }
    }
    value.filter(|v| !v.is_empty())
}

// ----- generation ----------------------------------------------------------

const WORDS: &[&str] = &[
    "migration",
    "mailbox",
    "quarterly",
    "report",
    "meeting",
    "schedule",
    "invoice",
    "budget",
    "project",
    "review",
    "draft",
    "attached",
    "please",
    "thanks",
    "regards",
    "update",
    "server",
    "deadline",
    "customer",
    "contract",
    "proposal",
    "agenda",
    "minutes",
    "follow-up",
    "question",
    "answer",
    "delivery",
    "shipment",
    "warehouse",
    "holiday",
    "vacation",
    "training",
    "workshop",
    "release",
    "version",
    "backup",
    "archive",
    "folder",
    "calendar",
    "invitation",
    "lunch",
    "tomorrow",
    "yesterday",
    "morning",
    "afternoon",
    "evening",
    "team",
    "office",
    "remote",
];

const UNICODE_WORDS: &[&str] = &[
    "Grüße",
    "Übersicht",
    "réunion",
    "école",
    "café",
    "niño",
    "mañana",
    "Straße",
    "Ærø",
    "Zürich",
    "会議",
    "資料",
    "予定",
    "Встреча",
    "отчёт",
    "Привет",
    "προθεσμία",
    "Αθήνα",
    "ελληνικά",
    "zażółć",
    "gęślą",
    "jaźń",
    "€100",
    "😀",
    "✓",
];

const NAMES: &[(&str, &str)] = &[
    ("Alice Example", "alice@example.org"),
    ("Bob Builder", "bob@example.com"),
    ("José Álvarez", "jose.alvarez@example.es"),
    ("Zoë Müller", "zoe.mueller@example.de"),
    ("田中 太郎", "tanaka@example.jp"),
    ("Ольга Петрова", "olga@example.ru"),
    ("Søren Kierkegaard", "soren@example.dk"),
    ("Chloé Dubois", "chloe@example.fr"),
    ("O'Brien, Pat", "pat.obrien@example.ie"),
    ("Newsletter", "news@lists.example.net"),
];

const SUBJECTS: &[&str] = &[
    "Quarterly report",
    "Re: Meeting tomorrow",
    "Fwd: Invoice 2023-118",
    "Project update",
    "Holiday schedule",
    "Re: Re: Contract draft v3",
    "Your order has shipped",
    "Lunch?",
    "Réunion de lundi – ordre du jour",
    "Grüße aus Zürich",
    "会議の資料について",
    "Отчёт за квартал",
    "Προθεσμία παράδοσης",
    "Zażółć gęślą jaźń",
    "Café ☕ et croissants 🥐",
];

const ATTACHMENTS: &[(&str, &str)] = &[
    ("application/pdf", "report.pdf"),
    ("image/png", "screenshot.png"),
    ("image/jpeg", "photo.jpg"),
    ("application/zip", "archive.zip"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "budget.xlsx",
    ),
    ("application/octet-stream", "data.bin"),
    ("text/csv", "export.csv"),
    ("application/pdf", "Übersicht März.pdf"),
    ("image/png", "图表.png"),
];

const KEYWORDS: &[&str] = &["$Label1", "$Label2", "$Forwarded", "Work", "$Junk"];

fn generate_one(rng: &mut fastrand::Rng, seed: u64, i: usize, avg: usize, date: i64) -> GenMessage {
    // Size distribution with mean ~avg: many small, some medium, a few large.
    let target = match rng.u8(0..100) {
        0..50 => avg * rng.usize(20..80) / 100,
        50..90 => avg * rng.usize(80..150) / 100,
        _ => avg * rng.usize(150..400) / 100,
    }
    .max(300);

    let (from_name, from_addr) = NAMES[rng.usize(..NAMES.len())];
    let (to_name, to_addr) = NAMES[rng.usize(..NAMES.len())];
    let subject = SUBJECTS[rng.usize(..SUBJECTS.len())];
    let tz = [0, 60, -300, 540, 330, -480][rng.usize(..6)];
    let sent = date - rng.i64(30..7200);

    let mut head = String::new();
    head.push_str(&format!(
        "Return-Path: <{from_addr}>\r\nReceived: from mx.example.net (mx.example.net [192.0.2.{}])\r\n\tby imap.example.test with ESMTPS id {:x}\r\n\tfor <{to_addr}>; {}\r\n",
        rng.u8(1..255),
        rng.u64(..),
        rfc2822_date(date, 0)
    ));
    head.push_str(&format!("From: {}\r\n", mailbox_header(rng, from_name, from_addr)));
    head.push_str(&format!("To: {}\r\n", mailbox_header(rng, to_name, to_addr)));
    if rng.u8(0..100) < 20 {
        let (cc_name, cc_addr) = NAMES[rng.usize(..NAMES.len())];
        head.push_str(&format!("Cc: {}\r\n", mailbox_header(rng, cc_name, cc_addr)));
    }
    head.push_str(&format!("Subject: {}\r\n", encode_header_text(rng, subject)));
    head.push_str(&format!("Date: {}\r\n", rfc2822_date(sent, tz)));
    head.push_str(&format!(
        "Message-ID: <{seed:x}.{i}.{:08x}@gen.cutover.test>\r\n",
        rng.u32(..)
    ));
    if subject.starts_with("Re:") {
        head.push_str(&format!(
            "In-Reply-To: <{:x}@example.org>\r\nReferences: <{:x}@example.org>\r\n",
            rng.u64(..),
            rng.u64(..)
        ));
    }
    head.push_str("MIME-Version: 1.0\r\n");

    let unicode = !subject.is_ascii() || rng.bool();
    let kind = rng.u8(0..100);
    let mut body = Vec::new();
    if kind < 40 {
        let text = text_body(rng, target.saturating_sub(head.len()), unicode);
        let (cte, encoded) = encode_text(rng, &text);
        head.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n"
        ));
        body.extend_from_slice(&encoded);
    } else if kind < 70 {
        let boundary = format!("=_alt_{seed:x}_{i}_{:x}", rng.u32(..));
        head.push_str(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n"
        ));
        let text = text_body(rng, target.saturating_sub(head.len()) * 2 / 5, unicode);
        body.extend_from_slice(&alternative_parts(rng, &boundary, &text));
    } else {
        let boundary = format!("=_mix_{seed:x}_{i}_{:x}", rng.u32(..));
        head.push_str(&format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n"));
        body.extend_from_slice(b"This is a multi-part message in MIME format.\r\n\r\n");
        let text_share = target / 8;
        let text = text_body(rng, text_share.max(100), unicode);
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if rng.bool() {
            let inner = format!("=_alt_{seed:x}_{i}_{:x}", rng.u32(..));
            body.extend_from_slice(
                format!("Content-Type: multipart/alternative; boundary=\"{inner}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&alternative_parts(rng, &inner, &text));
        } else {
            let (cte, encoded) = encode_text(rng, &text);
            body.extend_from_slice(
                format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(&encoded);
        }
        let n_att = rng.usize(1..=3);
        let mut budget = target.saturating_sub(head.len() + body.len() + 200);
        for a in 0..n_att {
            // Uneven split of what is left; the last attachment takes the rest.
            let share = if a + 1 == n_att {
                budget
            } else {
                budget * rng.usize(20..70) / 100
            };
            budget -= share;
            let raw_len = (share.saturating_sub(250) * 3 / 4).max(16);
            let (ctype, name) = ATTACHMENTS[rng.usize(..ATTACHMENTS.len())];
            let mut data = vec![0u8; raw_len];
            rng.fill(&mut data);
            body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
            body.extend_from_slice(attachment_headers(ctype, name).as_bytes());
            push_base64_lines(&mut body, &data);
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    }

    let mut raw = head.into_bytes();
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&body);

    let mut flags = Vec::new();
    let p = rng.u8(0..100);
    if p < 70 {
        flags.push("\\Seen".to_string());
    }
    if rng.u8(0..100) < 12 {
        flags.push("\\Flagged".to_string());
    }
    if rng.u8(0..100) < 20 {
        flags.push("\\Answered".to_string());
    }
    if rng.u8(0..100) < 3 {
        flags.push("\\Draft".to_string());
    }
    if rng.u8(0..100) < 6 {
        flags.push(KEYWORDS[rng.usize(..KEYWORDS.len())].to_string());
    }
    sort_flags(&mut flags);
    GenMessage {
        raw,
        flags,
        internal_date: date,
    }
}

fn alternative_parts(rng: &mut fastrand::Rng, boundary: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (cte, encoded) = encode_text(rng, text);
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(&encoded);
    let mut html = String::from(
        "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head>\r\n<body style=\"font-family: sans-serif\">\r\n",
    );
    for para in text.split("\r\n\r\n") {
        if !para.trim().is_empty() {
            html.push_str("<p>");
            html.push_str(&para.replace('&', "&amp;").replace('<', "&lt;"));
            html.push_str("</p>\r\n");
        }
    }
    html.push_str("</body></html>\r\n");
    let (cte, encoded) = encode_text(rng, &html);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&encoded);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

fn attachment_headers(ctype: &str, name: &str) -> String {
    if name.is_ascii() {
        format!(
            "Content-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        )
    } else {
        // RFC 2231 for the filename, RFC 2047 in name= as many clients do.
        format!(
            "Content-Type: {ctype};\r\n name=\"{}\"\r\nContent-Disposition: attachment;\r\n filename*=UTF-8''{}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            b_word(name),
            percent_encode(name)
        )
    }
}

/// Lines of words (~72 chars), paragraphs every few lines, `size` bytes-ish.
fn text_body(rng: &mut fastrand::Rng, size: usize, unicode: bool) -> String {
    let size = size.max(40);
    let mut out = String::with_capacity(size + 80);
    let mut line = String::new();
    let mut lines_in_para = 0;
    while out.len() + line.len() < size {
        let w = if unicode && rng.u8(0..100) < 15 {
            UNICODE_WORDS[rng.usize(..UNICODE_WORDS.len())]
        } else {
            WORDS[rng.usize(..WORDS.len())]
        };
        if !line.is_empty() && line.len() + w.len() + 1 > 72 {
            out.push_str(&line);
            out.push_str("\r\n");
            line.clear();
            lines_in_para += 1;
            if lines_in_para >= rng.usize(3..8) {
                out.push_str("\r\n");
                lines_in_para = 0;
            }
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&line);
    out.push_str("\r\n");
    out
}

/// Picks a transfer encoding for UTF-8 text: 7bit when ASCII, otherwise
/// quoted-printable, base64 or raw 8bit.
fn encode_text(rng: &mut fastrand::Rng, text: &str) -> (&'static str, Vec<u8>) {
    if text.is_ascii() {
        return ("7bit", text.as_bytes().to_vec());
    }
    match rng.u8(0..3) {
        0 => ("quoted-printable", quoted_printable(text.as_bytes())),
        1 => {
            let mut out = Vec::new();
            push_base64_lines(&mut out, text.as_bytes());
            ("base64", out)
        }
        _ => ("8bit", text.as_bytes().to_vec()),
    }
}

/// Quoted-printable with soft line breaks at 76 columns; input uses CRLF.
pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece_len = if plain { 1 } else { 3 };
            if col + piece_len > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if plain {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            col += piece_len;
        }
        out.extend_from_slice(b"\r\n");
    }
    // split() yields a trailing empty piece after the final CRLF.
    if data.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// Length of `push_base64_lines` output for `n` input bytes.
fn base64_lines_len(n: usize) -> usize {
    let enc = n.div_ceil(3) * 4;
    enc + enc.div_ceil(76) * 2
}

/// Base64 in 76-character CRLF-terminated lines.
fn push_base64_lines(out: &mut Vec<u8>, data: &[u8]) {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    for chunk in enc.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
}

fn mailbox_header(rng: &mut fastrand::Rng, name: &str, addr: &str) -> String {
    if name.is_ascii() {
        if name.contains(',') || name.contains('\'') {
            format!("\"{name}\" <{addr}>")
        } else {
            format!("{name} <{addr}>")
        }
    } else {
        format!("{} <{addr}>", encode_header_text(rng, name))
    }
}

/// RFC 2047: ASCII stays as is; otherwise B or Q encoded words of at most 75
/// characters, folded with CRLF SP.
fn encode_header_text(rng: &mut fastrand::Rng, text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let q = rng.bool();
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // Keep each encoded word comfortably below 75 characters.
        let limit = if q { 18 } else { 36 };
        if chunk.len() + c.len_utf8() > limit {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| if q { q_word(w) } else { b_word(w) })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn b_word(text: &str) -> String {
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    )
}

fn q_word(text: &str) -> String {
    let mut out = String::from("=?UTF-8?Q?");
    for &b in text.as_bytes() {
        match b {
            b' ' => out.push('_'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Tue, 05 Mar 2024 14:03:00 +0100` for a unix time shown in a fixed offset
/// (minutes east of UTC).
fn rfc2822_date(unix: i64, offset_minutes: i32) -> String {
    let tz = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("offset");
    chrono::DateTime::from_timestamp(unix, 0)
        .expect("valid date")
        .with_timezone(&tz)
        .format("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}
