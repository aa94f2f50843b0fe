//! Where a mailbox's own folders live on a server (RFC 2342 NAMESPACE), and
//! how a folder's wire name becomes a path relative to them and back.
//!
//! Courier, Cyrus with Debian's defaults and cPanel's Dovecot keep every
//! folder of a mailbox below `INBOX.` with `.` as the separator; Dovecot's
//! default and Cyrus upstream keep them at the top, with `/`. A migration
//! between the two must drop the source's prefix and add the target's, or
//! `INBOX.Sent` lands as `INBOX/Sent` below the target's inbox and Sent mail
//! never reaches the target's Sent folder.
//!
//! NAMESPACE is read beside the IMAP library, like STATUS=SIZE: its parser
//! does not know the answer and would reject it. The mapping itself
//! ([`Personal`]) is pure.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::classify::{classify_bye, io_error, timed};
use super::conn::{Conn, ListedFolder};
use super::status::complete_response;
use crate::error::{Error, Result};
use crate::utf7;

/// One namespace of a NAMESPACE answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// As the server sends it (modified UTF-7), e.g. `INBOX.` or `""`.
    pub prefix: String,
    pub delimiter: Option<char>,
}

/// The three lists of a NAMESPACE answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub personal: Vec<Namespace>,
    pub other_users: Vec<Namespace>,
    pub shared: Vec<Namespace>,
}

/// How the personal namespace was learnt, for `check` to tell the admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learnt {
    /// The server announced it (NAMESPACE).
    Announced,
    /// No NAMESPACE; every folder sits below `INBOX` and its separator, so
    /// that is taken as the prefix (what Courier-style servers do).
    InferredFromList,
    /// No NAMESPACE, nothing to infer: folders at the top.
    Default,
}

/// A mailbox's own folders on one server: the personal namespace's prefix
/// and separator, and the prefixes of the namespaces that are not the
/// user's own (other users', shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Personal {
    pub prefix: String,
    pub delimiter: Option<char>,
    pub others: Vec<String>,
    pub learnt: Learnt,
    /// Folders outside the personal namespace are read too, with their
    /// full name as their path (`[source] shared_folders`).
    pub include_others: bool,
}

impl Personal {
    /// From an announced NAMESPACE, or else inferred from the folder list.
    pub fn new(announced: Option<&Namespaces>, listed: &[ListedFolder]) -> Personal {
        let list_delimiter = listed
            .iter()
            .find_map(|f| f.delimiter.as_deref().and_then(|d| d.chars().next()));
        if let Some(ns) = announced
            && let Some(first) = ns.personal.first()
        {
            return Personal {
                prefix: first.prefix.clone(),
                delimiter: first.delimiter.or(list_delimiter),
                others: ns
                    .other_users
                    .iter()
                    .chain(&ns.shared)
                    .map(|n| n.prefix.clone())
                    .filter(|p| !p.is_empty())
                    .collect(),
                learnt: Learnt::Announced,
                include_others: false,
            };
        }
        // Without NAMESPACE: when every folder but INBOX sits below INBOX,
        // INBOX and its separator are the prefix.
        let below_inbox = |f: &ListedFolder| {
            let Some(d) = f.delimiter.as_deref().filter(|d| !d.is_empty()) else {
                return false;
            };
            f.wire_name.len() > 5 + d.len()
                && f.wire_name[..5].eq_ignore_ascii_case("INBOX")
                && f.wire_name[5..].starts_with(d)
        };
        let others: Vec<&ListedFolder> = listed
            .iter()
            .filter(|f| !f.wire_name.eq_ignore_ascii_case("INBOX"))
            .collect();
        if !others.is_empty()
            && others.iter().all(|f| below_inbox(f))
            && let Some(d) = others[0].delimiter.as_deref()
            && others.iter().all(|f| f.delimiter.as_deref() == Some(d))
        {
            return Personal {
                prefix: format!("INBOX{d}"),
                delimiter: d.chars().next(),
                others: Vec::new(),
                learnt: Learnt::InferredFromList,
                include_others: false,
            };
        }
        Personal {
            prefix: String::new(),
            delimiter: list_delimiter,
            others: Vec::new(),
            learnt: Learnt::Default,
            include_others: false,
        }
    }

    /// Reads the folders of other users' and shared namespaces too.
    pub fn with_others(mut self, include: bool) -> Personal {
        self.include_others = include;
        self
    }

    /// A namespace with no prefix, for servers whose folders sit at the top.
    pub fn flat(delimiter: char) -> Personal {
        Personal {
            prefix: String::new(),
            delimiter: Some(delimiter),
            others: Vec::new(),
            learnt: Learnt::Default,
            include_others: false,
        }
    }

    /// What `check` says about it.
    pub fn describe(&self) -> String {
        let delimiter = self.delimiter.map(|d| d.to_string()).unwrap_or_else(|| "none".into());
        let place = if self.prefix.is_empty() {
            "at the top".to_owned()
        } else {
            format!("below \"{}\"", utf7::decode(&self.prefix))
        };
        match self.learnt {
            Learnt::Announced => format!("folders {place}, separator \"{delimiter}\" (NAMESPACE)"),
            Learnt::InferredFromList => format!(
                "folders {place}, separator \"{delimiter}\" (no NAMESPACE: inferred because every folder sits below INBOX)"
            ),
            Learnt::Default => format!("folders {place}, separator \"{delimiter}\" (no NAMESPACE)"),
        }
    }

    fn strip_prefix<'a>(&self, wire_name: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(wire_name);
        }
        let n = self.prefix.len();
        // INBOX is case-insensitive, so is a prefix that starts with it.
        let head = wire_name.get(..n)?;
        let same = if self.prefix.len() >= 5 && self.prefix[..5].eq_ignore_ascii_case("INBOX") {
            head[..5].eq_ignore_ascii_case("INBOX") && head[5..] == self.prefix[5..]
        } else {
            head == self.prefix
        };
        same.then(|| &wire_name[n..])
    }

    /// A listed folder's path relative to the personal namespace, decoded,
    /// one element per level; `None` for a folder of another namespace
    /// (another user's, a shared one), which is not the mailbox's own,
    /// unless those are included: then its whole name is its path.
    /// INBOX is always `["INBOX"]`.
    pub fn relative_path(&self, wire_name: &str, delimiter: Option<&str>) -> Option<Vec<String>> {
        if wire_name.eq_ignore_ascii_case("INBOX") {
            return Some(vec!["INBOX".to_owned()]);
        }
        let other = self.others.iter().any(|p| {
            wire_name.starts_with(p.as_str()) || wire_name == p.trim_end_matches(|c| Some(c) == self.delimiter)
        });
        let rest = match self.strip_prefix(wire_name) {
            Some(rest) if !other => rest,
            _ if self.include_others => wire_name,
            _ => return None,
        };
        if rest.is_empty() {
            return None;
        }
        let decoded = utf7::decode(rest);
        let delimiter = delimiter.filter(|d| !d.is_empty());
        Some(match delimiter {
            Some(d) => decoded.split(d).map(str::to_owned).collect(),
            None => vec![decoded],
        })
    }

    /// The wire name of a path relative to the personal namespace (levels
    /// already free of the separator). `["INBOX", ...]` stays below INBOX.
    pub fn wire_name(&self, path: &[String]) -> String {
        let d = self.delimiter.unwrap_or('/').to_string();
        let joined = path.join(&d);
        if path.first().is_some_and(|p| p.eq_ignore_ascii_case("INBOX")) {
            return utf7::encode(&joined);
        }
        format!("{}{}", self.prefix, utf7::encode(&joined))
    }
}

impl Conn {
    /// The server's namespaces (RFC 2342), or `None` when it does not offer
    /// NAMESPACE or its answer cannot be read (then the caller infers).
    ///
    /// Written and read straight on the connection, as STATUS=SIZE is
    /// (see [`super::status`]): the server sends nothing unasked between
    /// commands, so the parser's buffer is empty and nothing is read past
    /// the tagged answer.
    pub async fn namespace(&mut self) -> Result<Option<Namespaces>> {
        if !self.has_capability("NAMESPACE") {
            return Ok(None);
        }
        let result = self.namespace_inner().await;
        self.broken_if_retryable(result)
    }

    async fn namespace_inner(&mut self) -> Result<Option<Namespaces>> {
        let t = self.timeout;
        let stream = self.session.get_mut();
        timed(t, "NAMESPACE", async {
            stream.write_all(b"cn0 NAMESPACE\r\n").await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("NAMESPACE", e))?;
        let mut found = None;
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = vec![0u8; 1024];
        loop {
            while let Some(len) = complete_response(&buf) {
                let line: Vec<u8> = buf.drain(..len).collect();
                let line = &line[..line.len() - 2];
                if let Some(rest) = line.strip_prefix(b"* NAMESPACE ") {
                    found = parse(rest);
                } else if line.starts_with(b"* BYE") {
                    return Err(classify_bye("NAMESPACE", &String::from_utf8_lossy(&line[5..])));
                } else if let Some(rest) = line.strip_prefix(b"cn0 ") {
                    // A refusal is no namespace, not a failure.
                    return Ok(if rest.starts_with(b"OK") { found } else { None });
                }
            }
            if buf.len() > 64 * 1024 {
                return Err(Error::transient(
                    "NAMESPACE: the answer is over 64 KiB; dropping the connection",
                ));
            }
            let stream = self.session.get_mut();
            let n = timed(t, "NAMESPACE", stream.read(&mut chunk))
                .await?
                .map_err(|e| io_error("NAMESPACE", e))?;
            if n == 0 {
                return Err(Error::transient("NAMESPACE: the server closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The three namespace lists after `* NAMESPACE `; `None` if malformed.
pub fn parse(data: &[u8]) -> Option<Namespaces> {
    let mut p = Parser { data, at: 0 };
    let personal = p.list()?;
    p.space()?;
    let other_users = p.list()?;
    p.space()?;
    let shared = p.list()?;
    Some(Namespaces {
        personal,
        other_users,
        shared,
    })
}

struct Parser<'a> {
    data: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.at).copied()
    }

    fn space(&mut self) -> Option<()> {
        (self.peek()? == b' ').then(|| self.at += 1)
    }

    fn nil(&mut self) -> bool {
        let nil = self
            .data
            .get(self.at..self.at + 3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"NIL"));
        if nil {
            self.at += 3;
        }
        nil
    }

    /// NIL or `(( "prefix" "delim" ext... ) ...)`.
    fn list(&mut self) -> Option<Vec<Namespace>> {
        if self.nil() {
            return Some(Vec::new());
        }
        self.expect(b'(')?;
        let mut out = Vec::new();
        while self.peek()? == b'(' {
            self.at += 1;
            let prefix = self.string()?;
            self.space()?;
            let delimiter = if self.nil() {
                None
            } else {
                self.string()?.chars().next()
            };
            // Namespace response extensions (RFC 2342 §5) are skipped.
            self.skip_to_close()?;
            out.push(Namespace { prefix, delimiter });
            if self.peek() == Some(b' ') {
                self.at += 1;
            }
        }
        self.expect(b')')?;
        Some(out)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    fn string(&mut self) -> Option<String> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek()? {
                        b'\\' => {
                            out.push(*self.data.get(self.at + 1)?);
                            self.at += 2;
                        }
                        b'"' => {
                            self.at += 1;
                            break;
                        }
                        b => {
                            out.push(b);
                            self.at += 1;
                        }
                    }
                }
                String::from_utf8(out).ok()
            }
            b'{' => {
                let close = self.at + self.data[self.at..].iter().position(|&b| b == b'}')?;
                let n: usize = std::str::from_utf8(&self.data[self.at + 1..close])
                    .ok()?
                    .trim_end_matches('+')
                    .parse()
                    .ok()?;
                let start = close + 3;
                let s = String::from_utf8(self.data.get(start..start + n)?.to_vec()).ok()?;
                self.at = start + n;
                Some(s)
            }
            _ => None,
        }
    }

    /// Skips to just past the `)` closing the current namespace entry.
    fn skip_to_close(&mut self) -> Option<()> {
        let mut depth = 1;
        let mut quoted = false;
        while depth > 0 {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'\\' if quoted => self.at += 1,
                b'"' => quoted = !quoted,
                b'(' if !quoted => depth += 1,
                b')' if !quoted => depth -= 1,
                _ => {}
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, delimiter: &str) -> ListedFolder {
        ListedFolder {
            wire_name: name.to_owned(),
            delimiter: Some(delimiter.to_owned()),
            attributes: Vec::new(),
        }
    }

    fn ns(prefix: &str, d: char) -> Namespace {
        Namespace {
            prefix: prefix.to_owned(),
            delimiter: Some(d),
        }
    }

    /// The answers of the servers cutover is tested against.
    #[test]
    fn namespace_answers_of_real_servers_parse() {
        let courier = parse(br##"(("INBOX." ".")) NIL (("#shared." ".")("shared." "."))"##).unwrap();
        assert_eq!(courier.personal, vec![ns("INBOX.", '.')]);
        assert!(courier.other_users.is_empty());
        assert_eq!(courier.shared, vec![ns("#shared.", '.'), ns("shared.", '.')]);
        let cyrus = parse(br##"(("INBOX." ".")) (("user." ".")) (("" "."))"##).unwrap();
        assert_eq!(cyrus.other_users, vec![ns("user.", '.')]);
        assert_eq!(cyrus.shared, vec![ns("", '.')]);
        let upstream = parse(br##"(("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))"##).unwrap();
        assert_eq!(upstream.personal, vec![ns("", '/')]);
        let dovecot = parse(br##"(("" "/")) NIL NIL"##).unwrap();
        assert_eq!(dovecot.personal, vec![ns("", '/')]);
        // Extensions, a NIL delimiter, a literal prefix.
        let odd = parse(b"((\"\" NIL \"X-PARAM\" (\"a\" \"b\"))) NIL (({3}\r\nab\\ \"/\"))").unwrap();
        assert_eq!(
            odd.personal,
            vec![Namespace {
                prefix: String::new(),
                delimiter: None
            }]
        );
        assert_eq!(odd.shared, vec![ns("ab\\", '/')]);
        assert_eq!(parse(b"((\"INBOX.\" \".\")"), None);
        assert_eq!(parse(b"garbage"), None);
    }

    #[test]
    fn folders_are_read_relative_to_the_personal_namespace() {
        let courier = Personal::new(
            parse(br##"(("INBOX." ".")) NIL (("#shared." ".")("shared." "."))"##).as_ref(),
            &[],
        );
        let p = |s: &str| -> Vec<String> { s.split('/').map(str::to_owned).collect() };
        assert_eq!(courier.relative_path("INBOX", Some(".")), Some(p("INBOX")));
        assert_eq!(courier.relative_path("inbox", Some(".")), Some(p("INBOX")));
        assert_eq!(courier.relative_path("INBOX.Sent", Some(".")), Some(p("Sent")));
        assert_eq!(
            courier.relative_path("Inbox.Archive.2024", Some(".")),
            Some(p("Archive/2024"))
        );
        assert_eq!(courier.relative_path("INBOX.Re&AOc-us", Some(".")), Some(p("Reçus")));
        assert_eq!(courier.relative_path("#shared.team", Some(".")), None);
        assert_eq!(courier.wire_name(&p("Sent")), "INBOX.Sent");
        assert_eq!(courier.wire_name(&p("Archive/2024")), "INBOX.Archive.2024");
        assert_eq!(courier.wire_name(&p("INBOX")), "INBOX");
        assert_eq!(courier.wire_name(&p("Reçus")), "INBOX.Re&AOc-us");

        // Cyrus, Debian: the shared namespace has no prefix, so only the
        // personal prefix tells the user's folders apart.
        let cyrus = Personal::new(parse(br##"(("INBOX." ".")) (("user." ".")) (("" "."))"##).as_ref(), &[]);
        assert_eq!(cyrus.relative_path("INBOX.Sent", Some(".")), Some(p("Sent")));
        assert_eq!(cyrus.relative_path("user.bob.Sent", Some(".")), None);
        assert_eq!(cyrus.relative_path("public", Some(".")), None);
        // With `[source] shared_folders`, by their whole name.
        let cyrus = cyrus.with_others(true);
        assert_eq!(
            cyrus.relative_path("user.bob.Sent", Some(".")),
            Some(p("user/bob/Sent"))
        );
        assert_eq!(cyrus.relative_path("public", Some(".")), Some(p("public")));
        assert_eq!(cyrus.relative_path("INBOX.Sent", Some(".")), Some(p("Sent")));
        let courier = courier.with_others(true);
        assert_eq!(
            courier.relative_path("#shared.team", Some(".")),
            Some(p("#shared/team"))
        );

        let upstream = Personal::new(
            parse(br##"(("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))"##).as_ref(),
            &[],
        );
        assert_eq!(
            upstream.relative_path("Archive/2024", Some("/")),
            Some(p("Archive/2024"))
        );
        assert_eq!(upstream.relative_path("Other Users/bob", Some("/")), None);
        assert_eq!(upstream.relative_path("Shared Folders", Some("/")), None);
        assert_eq!(upstream.wire_name(&p("Archive/2024")), "Archive/2024");
    }

    #[test]
    fn without_namespace_an_inbox_prefix_is_inferred_from_the_list() {
        let dotted = [
            listed("INBOX", "."),
            listed("INBOX.Sent", "."),
            listed("INBOX.Trash", "."),
        ];
        let p = Personal::new(None, &dotted);
        assert_eq!(p.prefix, "INBOX.");
        assert_eq!(p.learnt, Learnt::InferredFromList);
        assert!(p.describe().contains("inferred"), "{}", p.describe());

        let flat = [listed("INBOX", "/"), listed("Sent", "/"), listed("INBOX/Sub", "/")];
        let p = Personal::new(None, &flat);
        assert_eq!((p.prefix.as_str(), p.learnt), ("", Learnt::Default));
        assert_eq!(Personal::new(None, &[listed("INBOX", ".")]).prefix, "");
        // An announced namespace wins over what the list looks like.
        let announced = parse(br##"(("" ".")) NIL NIL"##);
        assert_eq!(Personal::new(announced.as_ref(), &dotted).prefix, "");
    }
}
