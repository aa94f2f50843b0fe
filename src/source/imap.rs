//! The IMAP source: folder listing with roles, metadata scans and body
//! fetches over one connection. Several sessions per mailbox fetch disjoint
//! UID batches in parallel; `run` decides how many.

use std::sync::Arc;

use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response};
use bytes::Bytes;
use tokio_rustls::rustls;

use crate::error::{ErrorKind, Result};
use crate::imap::{Conn, Endpoint, ListedFolder, MailboxState, Personal, parse_internal_date};
use crate::model::{Flags, FolderRole, Headers, MessageMeta, ScanDepth, SourceFolder, SourceLogin, role_from_name};
use crate::oauth::TokenSource;
use crate::utf7;

/// Connects to the source server for one user at a time.
#[derive(Clone)]
pub struct ImapSource {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    /// Set for `auth = "xoauth2"`: logins use SASL XOAUTH2 with a token
    /// instead of the users file's password.
    tokens: Option<TokenSource>,
    /// Also the folders of other users' and shared namespaces.
    shared_folders: bool,
}

impl ImapSource {
    pub fn new(endpoint: Endpoint) -> Result<ImapSource> {
        let tls = crate::imap::tls_config(endpoint.ca_file.as_ref())?;
        Ok(ImapSource {
            endpoint,
            tls,
            tokens: None,
            shared_folders: false,
        })
    }

    /// Also copies the folders of other users' and shared namespaces that
    /// the login sees (left out by default: they are not the mailbox's own).
    pub fn with_shared_folders(mut self, shared: bool) -> ImapSource {
        self.shared_folders = shared;
        self
    }

    /// Logs in with OAuth tokens (SASL XOAUTH2) from `tokens`.
    pub fn with_tokens(mut self, tokens: TokenSource) -> ImapSource {
        self.tokens = Some(tokens);
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Logs in as the user's UserName, as given (admin forms included).
    pub async fn open(&self, user: &SourceLogin) -> Result<SourceSession> {
        let conn = match &self.tokens {
            Some(tokens) => {
                let token = tokens.token(&user.login).await?;
                let conn = Conn::login_xoauth2(&self.endpoint, &self.tls, &user.login, &token).await;
                if conn.is_err() {
                    // A refused token is not reused by the next login.
                    tokens.reject(&user.login, &token).await;
                }
                conn?
            }
            None => Conn::login(&self.endpoint, &self.tls, &user.login, &user.secret).await?,
        };
        Ok(SourceSession {
            conn,
            user_root: user.user_root.clone(),
            examined: None,
            personal: None,
            shared_folders: self.shared_folders,
        })
    }
}

pub struct SourceSession {
    conn: Conn,
    user_root: Option<String>,
    examined: Option<String>,
    /// The personal namespace the last folder listing was read against.
    personal: Option<Personal>,
    shared_folders: bool,
}

/// Attributes of a LIST line that say what a folder is for.
fn role_from_attributes(attributes: &[String]) -> Option<FolderRole> {
    attributes.iter().find_map(|a| {
        Some(match a.as_str() {
            "\\sent" => FolderRole::Sent,
            "\\drafts" => FolderRole::Drafts,
            "\\trash" => FolderRole::Trash,
            "\\junk" | "\\spam" => FolderRole::Junk,
            "\\archive" => FolderRole::Archive,
            "\\all" | "\\allmail" => FolderRole::All,
            "\\flagged" | "\\starred" => FolderRole::Flagged,
            "\\important" => FolderRole::Important,
            "\\inbox" => FolderRole::Inbox,
            _ => return None,
        })
    })
}

impl SourceSession {
    pub fn conn_broken(&self) -> bool {
        self.conn.is_broken()
    }

    /// Every selectable folder of the mailbox, with its path relative to
    /// the personal namespace (RFC 2342: `INBOX.Sent` on Courier is `Sent`,
    /// as a mail client shows it) and its role. Folders of other users'
    /// and shared namespaces are not the mailbox's own and are left out.
    /// With a UserRoot, the folders below that root instead, the root
    /// itself being the INBOX.
    pub async fn folders(&mut self) -> Result<Vec<SourceFolder>> {
        let listed = self.conn.list().await.map_err(|e| e.context("listing folders"))?;
        let personal = match &self.user_root {
            Some(_) => None,
            None => {
                let announced = self
                    .conn
                    .namespace()
                    .await
                    .map_err(|e| e.context("reading NAMESPACE"))?;
                Some(Personal::new(announced.as_ref(), &listed).with_others(self.shared_folders))
            }
        };
        let mut out = Vec::new();
        for f in &listed {
            if f.attributes.iter().any(|a| a == "\\noselect" || a == "\\nonexistent") {
                continue;
            }
            let path = match (&self.user_root, &personal) {
                (Some(root), _) => user_root_path(root, f, &listed),
                (None, Some(personal)) => personal.relative_path(&f.wire_name, f.delimiter.as_deref()),
                (None, None) => None,
            };
            let Some(mut path) = path else { continue };
            if path.len() == 1 && path[0].eq_ignore_ascii_case("INBOX") {
                path[0] = "INBOX".to_owned();
            }
            let role = if path.len() == 1 && path[0] == "INBOX" {
                Some(FolderRole::Inbox)
            } else {
                role_from_attributes(&f.attributes).or_else(|| role_from_name(&path))
            };
            out.push(SourceFolder {
                wire_name: f.wire_name.clone(),
                path,
                role,
            });
        }
        self.personal = personal;
        Ok(out)
    }

    /// How the last listing placed the mailbox's folders (for `check`).
    pub fn namespace_note(&self) -> Option<String> {
        match (&self.user_root, &self.personal) {
            (Some(root), _) => Some(format!("folders below the UserRoot \"{root}\", which is the INBOX")),
            (None, Some(p)) => Some(p.describe()),
            (None, None) => None,
        }
    }

    /// Opens a folder read-only.
    pub async fn examine(&mut self, wire_name: &str) -> Result<MailboxState> {
        let state = self
            .conn
            .examine(wire_name)
            .await
            .map_err(|e| e.context(format!("opening folder {}", utf7::decode(wire_name))))?;
        self.examined = Some(wire_name.to_owned());
        Ok(state)
    }

    /// Whether the folder still exists: `false` only when the server says
    /// it does not (a NO with `[NONEXISTENT]` or its words), never for
    /// another failure. Opens it read-only.
    pub async fn folder_exists(&mut self, wire_name: &str) -> Result<bool> {
        match self.examine(wire_name).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::Item && crate::imap::says_nonexistent(&e.message) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Metadata of the messages with UID ≥ `from_uid` in the examined folder:
    /// UID, flags, INTERNALDATE and size, never the body. With `depth`
    /// [`ScanDepth::Headers`] also the Message-ID and Subject, which costs
    /// the server a read of every message (most keep only flags, dates and
    /// sizes in their index), so `run` asks for them only where it needs
    /// them before copying; a copy records the Message-ID from the body it
    /// fetched anyway.
    pub async fn scan(&mut self, from_uid: u32, depth: ScanDepth) -> Result<Vec<MessageMeta>> {
        let mut metas = Vec::new();
        // Gmail: X-GM-MSGID recognises one message across label folders.
        let gmail = if self.has_gmail_extensions() { " X-GM-MSGID" } else { "" };
        let headers = match depth {
            ScanDepth::Headers => " BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)]",
            ScanDepth::Index => "",
        };
        let command = format!(
            "UID FETCH {}:* (UID FLAGS INTERNALDATE RFC822.SIZE{gmail}{headers})",
            from_uid.max(1)
        );
        self.conn
            .fetch_each(&command, |resp| {
                if let Response::Fetch(_, attrs) = resp
                    && let Some(meta) = meta_from_attributes(attrs)
                    && meta.uid >= from_uid
                {
                    metas.push(meta);
                }
                Ok(())
            })
            .await?;
        Ok(metas)
    }

    /// The flags of the examined folder's messages up to `max_uid`: all of
    /// them, or with `since` (a HIGHESTMODSEQ, CONDSTORE) only those whose
    /// flags changed after it. Index-only: no header or body is read.
    pub async fn flags(&mut self, max_uid: u32, since: Option<u64>) -> Result<Vec<(u32, Flags)>> {
        let mut out = Vec::new();
        if max_uid == 0 {
            return Ok(out);
        }
        let changed = since.map(|m| format!(" (CHANGEDSINCE {m})")).unwrap_or_default();
        self.conn
            .fetch_each(&format!("UID FETCH 1:{max_uid} (UID FLAGS){changed}"), |resp| {
                if let Response::Fetch(_, attrs) = resp
                    && let Some(meta) = meta_from_attributes(attrs)
                    && meta.uid <= max_uid
                {
                    out.push((meta.uid, meta.flags));
                }
                Ok(())
            })
            .await?;
        Ok(out)
    }

    /// Whether the server keeps HIGHESTMODSEQ (CONDSTORE, RFC 7162).
    pub fn has_condstore(&self) -> bool {
        self.conn.has_capability("CONDSTORE")
    }

    /// The Message-ID and Subject of `uids` (in the examined folder), for
    /// messages a report names but the scan did not read headers of. UIDs
    /// the server no longer has are left out.
    pub async fn headers(&mut self, uids: &[u32]) -> Result<Vec<Headers>> {
        let mut out = Vec::new();
        if uids.is_empty() {
            return Ok(out);
        }
        let command = format!(
            "UID FETCH {} (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])",
            uid_set(uids)
        );
        self.conn
            .fetch_each(&command, |resp| {
                if let Response::Fetch(_, attrs) = resp
                    && let Some(meta) = meta_from_attributes(attrs)
                {
                    out.push(Headers {
                        uid: meta.uid,
                        message_id: meta.message_id,
                        subject: meta.subject,
                    });
                }
                Ok(())
            })
            .await?;
        Ok(out)
    }

    /// The [`crate::headers::content_key`] of each of `uids` of the
    /// examined folder, from its header section (`BODY.PEEK[HEADER]`: never
    /// the body, and the source stays unread).
    pub async fn content_keys(&mut self, uids: &[u32]) -> Result<Vec<(u32, String)>> {
        let mut out = Vec::new();
        if uids.is_empty() {
            return Ok(out);
        }
        let command = format!("UID FETCH {} (UID BODY.PEEK[HEADER])", uid_set(uids));
        self.conn
            .fetch_each(&command, |resp| {
                if let Response::Fetch(_, attrs) = resp {
                    let uid = attrs.iter().find_map(|a| match a {
                        AttributeValue::Uid(u) => Some(*u),
                        _ => None,
                    });
                    let header = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection { data: Some(data), .. } => Some(data),
                        _ => None,
                    });
                    if let (Some(uid), Some(header)) = (uid, header) {
                        out.push((uid, crate::headers::content_key(header)));
                    }
                }
                Ok(())
            })
            .await?;
        let asked: std::collections::HashSet<u32> = uids.iter().copied().collect();
        out.retain(|(uid, _)| asked.contains(uid));
        Ok(out)
    }

    /// Which of `uids` the examined folder still holds (`UID SEARCH UID`,
    /// [`UIDS_PER_SEARCH`] at a time): how a message missing from a FETCH
    /// answer is told apart from one deleted on the source.
    pub async fn present(&mut self, uids: &[u32]) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for chunk in sorted.chunks(UIDS_PER_SEARCH) {
            for r in self.conn.command(&format!("UID SEARCH UID {}", uid_set(chunk))).await? {
                if let Response::MailboxData(MailboxDatum::Search(found)) = r {
                    out.extend(found);
                }
            }
        }
        Ok(only_asked(out, uids))
    }

    /// Fetches the bodies of `uids` (in the examined folder), handing each
    /// to `each` as it arrives. UIDs the server no longer has are simply not
    /// handed over; the caller notices them missing.
    ///
    /// Answers for UIDs that were not asked for are dropped, and the bodies
    /// may add up to `most` bytes: a server that announced small sizes and
    /// sends big literals cannot take more memory than was reserved.
    pub async fn fetch_bodies(&mut self, uids: &[u32], most: u64, mut each: impl FnMut(u32, Bytes)) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let command = format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(uids));
        let asked: std::collections::HashSet<u32> = uids.iter().copied().collect();
        let mut received = 0u64;
        self.conn
            .fetch_each(&command, |resp| {
                if let Response::Fetch(_, attrs) = resp {
                    let mut uid = None;
                    let mut body = None;
                    for a in attrs {
                        match a {
                            AttributeValue::Uid(u) => uid = Some(*u),
                            AttributeValue::BodySection {
                                section: None, data, ..
                            } => {
                                body = Some(data.as_deref().map(Bytes::copy_from_slice).unwrap_or_default());
                            }
                            AttributeValue::Rfc822(data) => {
                                body = Some(data.as_deref().map(Bytes::copy_from_slice).unwrap_or_default());
                            }
                            _ => {}
                        }
                    }
                    if let (Some(uid), Some(body)) = (uid, body)
                        && asked.contains(&uid)
                    {
                        received += body.len() as u64;
                        if received > most {
                            return Err(crate::error::Error::transient(format!(
                                "FETCH: the server sent more than the {most} bytes its sizes announced for these messages; dropping the connection"
                            )));
                        }
                        each(uid, body);
                    }
                }
                Ok(())
            })
            .await
    }

    /// Whether the server is Gmail (or speaks its IMAP extensions:
    /// X-GM-MSGID, X-GM-LABELS), which makes the source label-based.
    pub fn has_gmail_extensions(&self) -> bool {
        self.conn.has_capability("X-GM-EXT-1")
    }

    /// Whether folder sizes come cheaply from STATUS (RFC 8438 STATUS=SIZE).
    pub fn has_status_size(&self) -> bool {
        self.conn.has_capability("STATUS=SIZE")
    }

    /// Whether this connection runs COMPRESS=DEFLATE.
    pub fn is_compressed(&self) -> bool {
        self.conn.is_compressed()
    }

    /// Message count and total bytes of each folder by STATUS (MESSAGES
    /// SIZE), without opening them; `None` where the server refused one.
    /// Only on servers with STATUS=SIZE.
    pub async fn folder_sizes(&mut self, wire_names: &[String]) -> Result<Vec<Option<(u32, u64)>>> {
        self.conn
            .status_sizes(wire_names)
            .await
            .map_err(|e| e.context("reading folder sizes"))
    }

    /// The size of every message of the examined folder (RFC822.SIZE).
    pub async fn message_sizes(&mut self) -> Result<Vec<u64>> {
        let mut sizes = Vec::new();
        self.conn
            .fetch_each("FETCH 1:* (RFC822.SIZE)", |resp| {
                if let Response::Fetch(_, attrs) = resp {
                    for a in attrs {
                        if let AttributeValue::Rfc822Size(s) = a {
                            sizes.push(u64::from(*s));
                        }
                    }
                }
                Ok(())
            })
            .await?;
        Ok(sizes)
    }

    /// How many messages of the examined folder are larger than `bytes`.
    pub async fn count_larger(&mut self, bytes: u64) -> Result<u64> {
        let mut count = 0;
        for r in self.conn.command(&format!("SEARCH LARGER {bytes}")).await? {
            if let Response::MailboxData(async_imap::imap_proto::MailboxDatum::Search(found)) = r {
                count += found.len() as u64;
            }
        }
        Ok(count)
    }

    /// Fetches the first `max_each` bytes of the last `count` messages of
    /// the examined folder (which holds `exists`) and returns how many bytes
    /// came: a sample to measure the source's read rate. Read-only
    /// (BODY.PEEK[]).
    pub async fn fetch_sample(&mut self, exists: u32, count: u32, max_each: u64) -> Result<u64> {
        if exists == 0 || count == 0 {
            return Ok(0);
        }
        let first = exists.saturating_sub(count - 1).max(1);
        let mut bytes = 0u64;
        self.conn
            .fetch_each(&format!("FETCH {first}:{exists} (BODY.PEEK[]<0.{max_each}>)"), |resp| {
                if let Response::Fetch(_, attrs) = resp {
                    for a in attrs {
                        if let AttributeValue::BodySection { data: Some(d), .. } = a {
                            bytes += d.len() as u64;
                        }
                    }
                }
                Ok(())
            })
            .await?;
        Ok(bytes)
    }

    pub fn examined(&self) -> Option<&str> {
        self.examined.as_deref()
    }

    pub async fn logout(self) {
        self.conn.logout().await;
    }
}

/// A folder's path below a UserRoot (Courier-style shared roots, an admin
/// login's view of one user): relative to the root, the root itself being
/// the INBOX unless it has a child called INBOX; `None` outside the root.
fn user_root_path(root: &str, folder: &ListedFolder, listed: &[ListedFolder]) -> Option<Vec<String>> {
    let split = |name: &str| -> Vec<String> {
        match folder.delimiter.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => name.split(d).map(str::to_owned).collect(),
            None => vec![name.to_owned()],
        }
    };
    let root_path = split(root);
    let mut path = split(&utf7::decode(&folder.wire_name));
    let same = |a: &str, b: &str| a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"));
    if path.len() < root_path.len() || !path.iter().zip(&root_path).all(|(a, b)| same(a, b)) {
        return None;
    }
    if path.len() == root_path.len() {
        let inbox_below = listed.iter().any(|other| {
            let p = split(&utf7::decode(&other.wire_name));
            p.len() == root_path.len() + 1
                && p.iter().zip(&root_path).all(|(a, b)| same(a, b))
                && p[root_path.len()].eq_ignore_ascii_case("INBOX")
        });
        return (!inbox_below).then(|| vec!["INBOX".to_owned()]);
    }
    path.drain(..root_path.len());
    Some(path)
}

fn meta_from_attributes(attrs: &[AttributeValue<'_>]) -> Option<MessageMeta> {
    let mut uid = None;
    let mut flags = Flags::default();
    let mut internal_date = None;
    let mut size = None;
    let mut message_id = None;
    let mut subject = None;
    let mut gm_msgid = None;
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => uid = Some(*u),
            AttributeValue::Flags(f) => {
                flags = Flags(
                    f.iter()
                        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                        .map(|f| f.to_string())
                        .collect(),
                );
            }
            AttributeValue::InternalDate(d) => internal_date = parse_internal_date(d),
            AttributeValue::Rfc822Size(s) => size = Some(u64::from(*s)),
            AttributeValue::GmailMsgId(id) => gm_msgid = Some(*id),
            // The only section the scan asks for is the Message-ID and
            // Subject headers.
            AttributeValue::BodySection { data: Some(data), .. } => {
                message_id = crate::headers::message_id(data);
                subject = crate::headers::subject(data);
            }
            _ => {}
        }
    }
    Some(MessageMeta {
        uid: uid?,
        flags,
        internal_date: internal_date.unwrap_or(0),
        size: size.unwrap_or(0),
        message_id,
        subject,
        gm_msgid,
    })
}

/// Most UIDs asked about in one `UID SEARCH`. Its answer is one line,
/// which the IMAP library parses again from the start each time more of it
/// arrives: the 200,000 UIDs of a large folder in one answer took seconds
/// of CPU, in answers of this size a few milliseconds.
const UIDS_PER_SEARCH: usize = 5_000;

/// The UIDs of a SEARCH answer that were asked about, sorted, each once:
/// a server answers a UID range with its own UIDs in that range, so only
/// the ones asked about count. Looked up in a set: a folder of 200,000
/// messages would otherwise take 200,000 scans of the list.
pub fn only_asked(mut found: Vec<u32>, asked: &[u32]) -> Vec<u32> {
    let asked: std::collections::HashSet<u32> = asked.iter().copied().collect();
    found.retain(|u| asked.contains(u));
    found.sort_unstable();
    found.dedup();
    found
}

/// A compact UID set: "1:5,9,12:13".
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_fetch(line: &[u8]) -> Option<MessageMeta> {
        match Response::parse(line).expect("parses").1 {
            Response::Fetch(_, attrs) => meta_from_attributes(&attrs),
            other => panic!("not a FETCH response: {other:?}"),
        }
    }

    /// Responses as Google's "IMAP Extensions" documentation shows them
    /// (developers.google.com/gmail/imap/imap-extensions), with the UID a
    /// scan asks for.
    #[test]
    fn gmail_message_ids_are_read_from_fetch_responses() {
        let m = parse_fetch(b"* 1 FETCH (X-GM-MSGID 1278455344230334865 UID 7)\r\n").unwrap();
        assert_eq!(m.gm_msgid, Some(1278455344230334865));
        assert_eq!(m.uid, 7);
        let m = parse_fetch(
            b"* 2 FETCH (UID 8 FLAGS (\\Seen) X-GM-MSGID 1278455344230334866 X-GM-LABELS (\\Inbox \\Sent Important \"Muy Importante\") RFC822.SIZE 42)\r\n",
        )
        .unwrap();
        assert_eq!((m.uid, m.gm_msgid, m.size), (8, Some(1278455344230334866), 42));
        assert!(m.flags.seen());
        let m = parse_fetch(b"* 3 FETCH (UID 9 X-GM-LABELS ())\r\n").unwrap();
        assert_eq!(m.gm_msgid, None, "not Gmail: keyed by Message-ID and size");
    }

    fn listed(name: &str) -> ListedFolder {
        ListedFolder {
            wire_name: name.to_owned(),
            delimiter: Some(".".to_owned()),
            attributes: Vec::new(),
        }
    }

    /// `UserRoot=INBOX` on a Courier-style server: the root is the INBOX
    /// and is copied too (it used to be left out, silently).
    #[test]
    fn a_user_root_is_the_inbox_and_its_children_the_folders() {
        let all = [
            listed("INBOX"),
            listed("INBOX.Sent"),
            listed("INBOX.Archive.2024"),
            listed("Other"),
        ];
        let path = |name: &str, root: &str| user_root_path(root, &listed(name), &all);
        let p = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(path("INBOX", "INBOX"), Some(p("INBOX")));
        assert_eq!(path("INBOX.Sent", "INBOX"), Some(p("Sent")));
        assert_eq!(path("INBOX.Archive.2024", "inbox"), Some(p("Archive/2024")));
        assert_eq!(path("Other", "INBOX"), None);
        // A root with its own INBOX child: that child is the INBOX.
        let shared = [listed("shared.b"), listed("shared.b.INBOX"), listed("shared.b.Sent")];
        let path = |name: &str| user_root_path("shared.b", &listed(name), &shared);
        assert_eq!(path("shared.b"), None);
        assert_eq!(path("shared.b.INBOX"), Some(p("INBOX")));
        assert_eq!(path("shared.b.Sent"), Some(p("Sent")));
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 12, 13]), "1:3,5,9,12:13");
        assert_eq!(uid_set(&[7]), "7");
    }

    #[test]
    fn a_search_answer_counts_only_the_uids_asked_about() {
        // An answer that names a UID not asked about (5) and one twice.
        assert_eq!(only_asked(vec![7, 5, 2, 1, 2], &[1, 2, 3, 7]), vec![1, 2, 7]);
        assert!(only_asked(vec![4], &[]).is_empty());
    }

    #[test]
    fn roles_by_attribute_then_by_name() {
        assert_eq!(
            role_from_attributes(&["\\hasnochildren".into(), "\\sent".into()]),
            Some(FolderRole::Sent)
        );
        let p = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(role_from_name(&p("[Gmail]/Gesendet")), Some(FolderRole::Sent));
        assert_eq!(role_from_name(&p("Deleted Items")), Some(FolderRole::Trash));
        assert_eq!(role_from_name(&p("Projects/Sent")), None);
    }
}
