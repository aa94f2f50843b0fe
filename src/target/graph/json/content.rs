//! Whether an Exchange item holds a source message's content, for
//! `cutover verify`: what Graph returns for the item (the body, and each
//! attachment's name and bytes) against what the source MIME says.
//!
//! Exchange re-renders a body (it wraps text in HTML, adds a head, turns
//! line breaks into tags), so bodies are compared by the text a reader
//! sees, whitespace aside. Attachments are compared by name, size and
//! SHA-256 of their bytes, as a multiset. A message json mode cut to fit
//! one request has two acceptable forms: cut with the original attached
//! (json), or whole (importMime).
//!
//! Pure: no I/O, unit-tested here.

use sha2::{Digest, Sha256};

use super::Attachment;
use crate::target::graph::api::ItemBody;

/// The forms a faithful copy may take; the first is the likeliest.
#[derive(Debug)]
pub struct Expected {
    pub forms: Vec<Form>,
}

/// One form of a copy: the text of its body and its attachments.
#[derive(Debug)]
pub struct Form {
    pub text: String,
    pub attachments: Vec<Summary>,
}

/// An attachment as compared: Exchange keeps names and bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Summary {
    pub name: String,
    pub size: u64,
    /// SHA-256 of the bytes; `None` for an attached item (message/rfc822
    /// that Exchange turned into an itemAttachment), compared by name only.
    pub sha256: Option<[u8; 32]>,
}

impl Summary {
    pub fn of_bytes(name: &str, bytes: &[u8]) -> Summary {
        Summary {
            name: name.to_owned(),
            size: bytes.len() as u64,
            sha256: Some(Sha256::digest(bytes).into()),
        }
    }
}

impl Form {
    pub(super) fn new(body: &ItemBody, attachments: &[Attachment]) -> Form {
        Form {
            text: visible_text(body.content_type, &body.content),
            attachments: attachments
                .iter()
                .map(|a| Summary::of_bytes(&a.name, &a.bytes))
                .collect(),
        }
    }
}

impl Expected {
    /// Whether any attachment is expected, in any form (a reader may skip
    /// listing an item's attachments when none is, and Exchange says none).
    pub fn has_attachments(&self) -> bool {
        self.forms.iter().any(|f| !f.attachments.is_empty())
    }

    /// `None` when the item (body `content_type`/`content`, `attachments`)
    /// matches one of the forms; else what differs from the likeliest one.
    pub fn compare(&self, content_type: &str, content: &str, attachments: &[Summary]) -> Option<String> {
        let text = visible_text(content_type, content);
        let mut first = None;
        for form in &self.forms {
            match form.differences(&text, attachments) {
                None => return None,
                Some(d) => {
                    first.get_or_insert(d);
                }
            }
        }
        first
    }
}

impl Form {
    fn differences(&self, text: &str, attachments: &[Summary]) -> Option<String> {
        let mut out = Vec::new();
        if text != self.text {
            let (t, s) = (text.chars().count(), self.text.chars().count());
            out.push(if t < s && self.text.starts_with(text) {
                format!("its body is cut short ({t} of the source's {s} characters of text)")
            } else {
                format!("its body differs from the source's ({t} characters of text, the source {s})")
            });
        }
        let mut expected: Vec<&Summary> = self.attachments.iter().collect();
        let mut extra = Vec::new();
        for a in attachments {
            let at = expected.iter().position(|e| match a.sha256 {
                Some(_) => *e == a,
                // An attached item: a message/rfc822 attachment.
                None => e.name == a.name || e.name.to_ascii_lowercase().ends_with(".eml"),
            });
            match at {
                Some(i) => {
                    expected.remove(i);
                }
                None => extra.push(a),
            }
        }
        for e in &expected {
            match extra.iter().position(|a| a.name == e.name) {
                Some(i) => {
                    let a = extra.remove(i);
                    out.push(format!(
                        "attachment \"{}\" differs ({} bytes, the source's {})",
                        e.name, a.size, e.size
                    ));
                }
                None => out.push(format!("attachment \"{}\" ({} bytes) is missing", e.name, e.size)),
            }
        }
        for a in extra {
            out.push(format!("it has an attachment \"{}\" the source has not", a.name));
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

/// The text a reader sees, without whitespace: HTML tags, comments and the
/// head, style and script elements dropped, character references decoded.
pub fn visible_text(content_type: &str, content: &str) -> String {
    let decoded;
    let text = if content_type.eq_ignore_ascii_case("html") {
        decoded = html_text(content);
        decoded.as_str()
    } else {
        content
    };
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with('<') {
            // Elements whose content is not shown.
            let hidden = ["head", "style", "script", "title"].into_iter().find(|name| {
                rest[1..].starts_with(name)
                    && rest[1 + name.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c == '>' || c.is_whitespace() || c == '/')
            });
            if let Some(name) = hidden {
                let close = format!("</{name}");
                i += rest.find(&close).map_or(rest.len(), |e| {
                    e + rest[e..].find('>').map_or(rest.len() - e, |g| g + 1)
                });
                continue;
            }
            match rest.find('>') {
                Some(e) => {
                    i += e + 1;
                    out.push(' ');
                    continue;
                }
                None => {
                    // A lone '<' is text.
                }
            }
        }
        if rest.starts_with('&')
            && let Some((c, len)) = reference(&html[i..])
        {
            out.push(c);
            i += len;
            continue;
        }
        let c = html[i..].chars().next().expect("inside the string");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// A character reference at the start of `s` and its length.
fn reference(s: &str) -> Option<(char, usize)> {
    let end = s[..s.len().min(12)].find(';')?;
    let name = &s[1..end];
    let c = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
    } else if let Some(dec) = name.strip_prefix('#') {
        char::from_u32(dec.parse().ok()?)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{a0}',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(text: &str, attachments: &[(&str, &[u8])]) -> Expected {
        Expected {
            forms: vec![Form {
                text: visible_text("text", text),
                attachments: attachments.iter().map(|(n, b)| Summary::of_bytes(n, b)).collect(),
            }],
        }
    }

    #[test]
    fn a_body_exchange_rendered_as_html_is_the_same_text() {
        let e = form("Hello Bob,\r\n\r\nfish & chips < 5 €.\r\n", &[]);
        let html = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html\"><style>p{}</style></head>\
<body><div>Hello Bob,<br><br>fish &amp; chips &lt; 5 &#8364;.</div><!-- x --></body></html>";
        assert_eq!(e.compare("html", html, &[]), None);
        assert_eq!(visible_text("html", "a&nbsp;b &#x41; &bogus; <b>c</b>"), "abA&bogus;c");
    }

    #[test]
    fn a_cut_body_and_a_missing_or_changed_attachment_are_named() {
        let e = form("The whole text of the message", &[("a.pdf", b"PDF"), ("b.png", b"PNG")]);
        let got = e
            .compare(
                "text",
                "The whole text",
                &[Summary::of_bytes("b.png", b"PNX"), Summary::of_bytes("c.txt", b"")],
            )
            .unwrap();
        assert!(got.contains("cut short (12 of the source's 24"), "{got}");
        assert!(got.contains("attachment \"a.pdf\" (3 bytes) is missing"), "{got}");
        assert!(got.contains("attachment \"b.png\" differs"), "{got}");
        assert!(got.contains("\"c.txt\" the source has not"), "{got}");
        let same = [Summary::of_bytes("b.png", b"PNG"), Summary::of_bytes("a.pdf", b"PDF")];
        assert_eq!(e.compare("text", "The whole  text of the\nmessage", &same), None);
    }

    #[test]
    fn either_form_of_a_cut_message_matches() {
        let raw = format!(
            "From: a@x\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n{}\r\n",
            "word ".repeat(1_100_000)
        );
        let e = super::super::expected_content(raw.as_bytes()).unwrap();
        assert_eq!(e.forms.len(), 2);
        let cut = &e.forms[0];
        assert!(cut.attachments.iter().any(|a| a.name == super::super::ORIGINAL_NAME));
        // importMime keeps it whole: the full text, no attachment.
        assert_eq!(e.compare("text", &"word ".repeat(1_100_000), &[]), None);
        // A whole body without the original is not the cut form's either.
        assert!(e.compare("text", &"word ".repeat(1000), &[]).is_some());
    }
}
