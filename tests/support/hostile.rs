//! Hostile mail: messages real mailboxes hold that break naive parsers and
//! naive "exactly once" keys. Generated rather than stored because several
//! are large or binary (NUL bytes, 1,000-line headers, 100-deep nesting,
//! the messages sized exactly at and one byte over `max_message_bytes`).
//!
//! Each message has a name saying what is odd about it; tests copy the
//! whole set and check every one arrived byte-identical or was reported.

use super::mailgen::{GenMessage, sort_flags};

/// What the migration must do with a hostile message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Arrives byte-identical, with its flags and INTERNALDATE.
    Copied,
    /// Is skipped as too large, and the reason shows in `status`.
    TooLarge,
    /// The target may refuse it (e.g. a zero-byte message); if it does, the
    /// refusal shows in `status` with the target's reason. Never silent.
    CopiedOrReported,
}

pub struct Hostile {
    pub name: &'static str,
    pub msg: GenMessage,
    pub expect: Expect,
}

fn message(i: usize, raw: Vec<u8>) -> GenMessage {
    let mut flags = vec!["\\Seen".to_string()];
    if i.is_multiple_of(3) {
        flags.push("\\Flagged".into());
    }
    sort_flags(&mut flags);
    GenMessage {
        raw,
        flags,
        internal_date: 1_700_000_000 + i as i64 * 3_607,
    }
}

fn plain(headers: &str, body: &str) -> Vec<u8> {
    format!("{headers}\r\n{body}").into_bytes()
}

/// A message of exactly `size` bytes (size must be ≥ 300).
pub fn sized(size: usize, id: &str) -> Vec<u8> {
    let head = format!(
        "From: sizer@example.test\r\nTo: user@example.test\r\nSubject: exactly {size} bytes\r\n\
         Message-ID: <{id}@hostile.test>\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n\r\n"
    );
    let mut raw = head.into_bytes();
    let mut line = 0usize;
    while raw.len() < size {
        let left = size - raw.len();
        if left >= 78 {
            let text = format!("{:0>74}\r\n", line);
            raw.extend_from_slice(&text.as_bytes()[..76]);
            line += 1;
        } else {
            raw.extend(std::iter::repeat_n(b'x', left));
        }
    }
    assert_eq!(raw.len(), size);
    raw
}

/// The hostile set, for a run whose `max_message_bytes` is `limit`.
pub fn corpus(limit: usize) -> Vec<Hostile> {
    let std_head = |id: &str, subject: &str| {
        format!(
            "From: Hostile <hostile@example.test>\r\nTo: user@example.test\r\nSubject: {subject}\r\n\
             Date: Tue, 3 Jan 2023 09:00:00 +0100\r\nMessage-ID: <{id}@hostile.test>\r\n"
        )
    };
    let mut out: Vec<(&'static str, Vec<u8>, Expect)> = Vec::new();

    out.push((
        "no-message-id-a",
        plain(
            "From: a@example.test\r\nSubject: no id A\r\nDate: Wed, 4 Jan 2023 08:00:00 +0000\r\n",
            "first message without a Message-ID\r\n",
        ),
        Expect::Copied,
    ));
    out.push((
        "no-message-id-b",
        plain(
            "From: a@example.test\r\nSubject: no id B\r\nDate: Wed, 4 Jan 2023 08:00:00 +0000\r\n",
            "second message without a Message-ID\r\n",
        ),
        Expect::Copied,
    ));
    let dup = "From: d@example.test\r\nSubject: duplicate id\r\nMessage-ID: <same@hostile.test>\r\n";
    out.push(("duplicate-message-id-1", plain(dup, "one body\r\n"), Expect::Copied));
    out.push((
        "duplicate-message-id-2",
        plain(dup, "a different body under the same Message-ID\r\n"),
        Expect::Copied,
    ));
    out.push((
        "bare-lf",
        b"From: lf@example.test\nSubject: bare LF line ends\nMessage-ID: <lf@hostile.test>\n\nline one\nline two\n"
            .to_vec(),
        Expect::Copied,
    ));
    out.push((
        "mixed-cr-lf",
        b"From: cr@example.test\r\nSubject: mixed\rMessage-ID: <cr@hostile.test>\n\r\nbody\rwith\nodd\r\nends\r\n"
            .to_vec(),
        Expect::Copied,
    ));
    let mut nul = std_head("nul", "NUL bytes in the body").into_bytes();
    nul.extend_from_slice(b"\r\nbefore\0after\r\n\0\0\0\r\nend\r\n");
    out.push(("nul-bytes", nul, Expect::CopiedOrReported));
    let mut eight = b"From: J\xc3\xbcrgen M\xfcller <jm@example.test>\r\nSubject: Gr\xc3\xbc\xc3\x9fe \xe2\x80\x94 8-bit header\r\nMessage-ID: <8bit@hostile.test>\r\nX-Latin1: caf\xe9\r\n\r\n".to_vec();
    eight.extend_from_slice(b"body \xff\xfe raw bytes\r\n");
    out.push(("8bit-headers", eight, Expect::Copied));
    out.push((
        "unknown-charset",
        plain(
            &(std_head("charset-unknown", "=?x-klingon-42?Q?qapla=27?=")
                + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-klingon-42\r\n"),
            "tlhIngan Hol \u{f8d0}\r\n",
        ),
        Expect::Copied,
    ));
    let mut wrong = (std_head("charset-wrong", "=?us-ascii?B?w6nDqcOp?=")
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
        .into_bytes();
    wrong.extend_from_slice(b"declared ASCII, holds latin-1 \xe9\xe8 and UTF-8 \xc3\xa9\r\n");
    out.push(("wrong-charset", wrong, Expect::Copied));
    let mut long_head = std_head("thousand-lines", "1,000 header lines");
    for i in 0..1000 {
        long_head.push_str(&format!("X-Trace-{i}: hop {i} via relay{i}.example.test\r\n"));
    }
    out.push(("1000-line-header", plain(&long_head, "short body\r\n"), Expect::Copied));
    let mut deep = std_head("deep", "100-deep MIME nesting") + "MIME-Version: 1.0\r\n";
    let mut tail = String::new();
    for level in 0..100 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
        ));
        tail = format!("\r\n--b{level}--\r\n{tail}");
    }
    deep.push_str("Content-Type: text/plain\r\n\r\nthe bottom\r\n");
    deep.push_str(&tail);
    out.push(("100-deep-nesting", deep.into_bytes(), Expect::Copied));
    out.push(("zero-bytes", Vec::new(), Expect::CopiedOrReported));
    out.push((
        "header-only-no-blank-line",
        std_head("header-only", "only headers").into_bytes(),
        Expect::Copied,
    ));
    out.push((
        "no-headers-just-text",
        b"this message has no header block at all\r\njust text\r\n".to_vec(),
        Expect::Copied,
    ));
    out.push(("exactly-max-bytes", sized(limit, "at-limit"), Expect::Copied));
    out.push(("one-byte-over-max", sized(limit + 1, "over-limit"), Expect::TooLarge));

    out.into_iter()
        .enumerate()
        .map(|(i, (name, raw, expect))| Hostile {
            name,
            msg: message(i, raw),
            expect,
        })
        .collect()
}
