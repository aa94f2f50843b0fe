//! Google Takeout as a source: a Gmail export is one mbox file per user
//! ("All mail Including Spam and Trash.mbox"), so tenants without IMAP
//! access to Gmail can still migrate, with the same label rules and
//! checkpoint as an IMAP source.
//!
//! The file may be many gigabytes: it is never loaded. One pass reads it
//! in pieces of at most 1 MiB, keeping of each message only its header
//! block (up to 4 MiB) and counts (memory bounded whatever the size of a
//! message, or a file without line breaks), and builds an index — offset,
//! length and metadata of each message. Bodies are
//! read back from their offsets when a batch is copied.
//!
//! Format, as Takeout writes it: each message starts with a `From_` line
//! (`From 1278455344230334865@xxx Wed Feb 16 22:59:48 +0000 2022`: Gmail's
//! X-GM-MSGID, then the received time), followed by `X-GM-THRID` and
//! `X-Gmail-Labels` headers Takeout adds (comma-separated labels, quoted
//! when they hold a comma) and the message. Body lines that would look like
//! a `From_` line are quoted with `>` (mboxrd): one `>` is removed from
//! every `>From ` line. A `From ` line only starts a message at the start of
//! the file or after an empty line. The two Takeout headers are removed, so
//! the target gets the message as Gmail received it.
//!
//! The labels become folders of the source as IMAP would show them —
//! Inbox, Sent, Drafts, Spam, Trash, Starred, Important, each user label,
//! and All Mail over everything but Spam and Trash — and the messages keep
//! their place in the file as UIDs. `Opened`/`Unread` give the read state;
//! Gmail's tab labels (`Category ...`), `Archived` and chat transcripts
//! (`Chat`) are not folders (chats are not mail and are left out).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::imap::MailboxState;
use crate::model::SourceLogin;
use crate::model::{Flags, FolderRole, MessageMeta, SourceFolder};

/// Where each user's export is: a path template with `{email}`.
#[derive(Clone)]
pub struct MboxSource {
    template: PathBuf,
    /// The index of each file being copied, shared by every session of its
    /// mailbox (the file is read through once per sync). Held weakly: it
    /// goes away with the mailbox's last session, so a run over thousands
    /// of users keeps only the indexes of the mailboxes in progress.
    indexes: Arc<Mutex<HashMap<PathBuf, Weak<Index>>>>,
}

/// One message of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    /// Where the message's bytes start (after its `From_` line) and how
    /// many there are in the file (quoted, with the Takeout headers).
    offset: u64,
    len: u64,
    meta: MessageMeta,
    labels: Vec<String>,
}

/// What one pass over the file learned.
#[derive(Debug)]
struct Index {
    entries: Vec<Entry>,
    /// Changes when the file is replaced (size or modification time), so
    /// the checkpoint re-matches its messages by content.
    validity: u32,
    /// Folder name (as listed) → role and the UIDs in it.
    folders: BTreeMap<String, (Option<FolderRole>, Vec<u32>)>,
}

impl MboxSource {
    pub fn new(template: PathBuf) -> MboxSource {
        MboxSource {
            template,
            indexes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The file of one user.
    pub fn path_for(&self, email: &str) -> PathBuf {
        PathBuf::from(self.template.to_string_lossy().replace("{email}", email))
    }

    pub fn describe(&self) -> String {
        format!("Takeout mbox {}", self.template.display())
    }

    /// Opens the user's export, reading it through once per run.
    pub async fn open(&self, user: &SourceLogin) -> Result<MboxSession> {
        let path = self.path_for(&user.email);
        let cached = self
            .indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&path)
            .and_then(Weak::upgrade);
        let index = match cached {
            Some(i) => i,
            None => {
                let p = path.clone();
                let built = tokio::task::spawn_blocking(move || build_index(&p))
                    .await
                    .map_err(|e| Error::fatal(format!("reading {}: {e}", path.display())))??;
                let built = Arc::new(built);
                let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
                indexes.retain(|_, w| w.strong_count() > 0);
                indexes.insert(path.clone(), Arc::downgrade(&built));
                built
            }
        };
        Ok(MboxSession {
            path,
            index,
            examined: None,
        })
    }
}

pub struct MboxSession {
    path: PathBuf,
    index: Arc<Index>,
    examined: Option<String>,
}

impl MboxSession {
    /// The labels as folders, with their roles.
    pub fn folders(&self) -> Vec<SourceFolder> {
        self.index
            .folders
            .iter()
            .map(|(name, (role, _))| SourceFolder {
                wire_name: name.clone(),
                path: name.split('/').map(str::to_owned).collect(),
                role: *role,
            })
            .collect()
    }

    pub fn examine(&mut self, name: &str) -> Result<MailboxState> {
        let (_, uids) = self
            .index
            .folders
            .get(name)
            .ok_or_else(|| Error::item(format!("no label {name} in {}", self.path.display())))?;
        self.examined = Some(name.to_owned());
        Ok(MailboxState {
            uid_validity: self.index.validity,
            uid_next: Some(self.index.entries.len() as u32 + 1),
            exists: uids.len() as u32,
            // The file does not change between runs: nothing to refresh.
            highest_modseq: Some(1),
            permanent_flags: None,
        })
    }

    pub fn examined(&self) -> Option<&str> {
        self.examined.as_deref()
    }

    /// Metadata of the examined label's messages from `from_uid` on.
    pub fn scan(&self, from_uid: u32) -> Vec<MessageMeta> {
        let Some((_, uids)) = self.examined.as_ref().and_then(|n| self.index.folders.get(n)) else {
            return Vec::new();
        };
        uids.iter()
            .filter(|&&u| u >= from_uid)
            .map(|&u| self.index.entries[u as usize - 1].meta.clone())
            .collect()
    }

    /// Which of `uids` the examined label holds.
    pub fn present(&self, uids: &[u32]) -> Vec<u32> {
        let held: std::collections::HashSet<u32> = self.scan(1).iter().map(|m| m.uid).collect();
        uids.iter().copied().filter(|u| held.contains(u)).collect()
    }

    /// Message count and bytes of each label, from the index.
    pub fn folder_sizes(&self, names: &[String]) -> Vec<Option<(u32, u64)>> {
        names
            .iter()
            .map(|n| {
                let (_, uids) = self.index.folders.get(n)?;
                let bytes = uids.iter().map(|&u| self.index.entries[u as usize - 1].meta.size).sum();
                Some((uids.len() as u32, bytes))
            })
            .collect()
    }

    /// Sizes of the examined label's messages, from the index.
    pub fn message_sizes(&self) -> Vec<u64> {
        self.scan(1).iter().map(|m| m.size).collect()
    }

    /// Reads the first `max_each` bytes' worth of the last `count` messages
    /// of the examined label: a sample of the file's read rate.
    pub async fn fetch_sample(&self, count: u32, max_each: u64) -> Result<u64> {
        let metas = self.scan(1);
        let uids: Vec<u32> = metas.iter().rev().take(count as usize).map(|m| m.uid).collect();
        let mut bytes = 0u64;
        self.fetch_bodies(&uids, |_, body| bytes += (body.len() as u64).min(max_each))
            .await?;
        Ok(bytes)
    }

    /// Reads the messages `uids` back from the file.
    pub async fn fetch_bodies(&self, uids: &[u32], mut each: impl FnMut(u32, Bytes)) -> Result<()> {
        let wanted: Vec<(u32, u64, u64)> = uids
            .iter()
            .filter_map(|&u| {
                let e = self.index.entries.get((u as usize).checked_sub(1)?)?;
                Some((u, e.offset, e.len))
            })
            .collect();
        let path = self.path.clone();
        let bodies = tokio::task::spawn_blocking(move || -> Result<Vec<(u32, Bytes)>> {
            let mut file = File::open(&path).map_err(|e| file_error(&path, &e))?;
            let mut out = Vec::with_capacity(wanted.len());
            for (uid, offset, len) in wanted {
                let mut raw = vec![0u8; len as usize];
                file.seek(SeekFrom::Start(offset)).map_err(|e| file_error(&path, &e))?;
                file.read_exact(&mut raw).map_err(|e| file_error(&path, &e))?;
                out.push((uid, Bytes::from(clean(&raw))));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::fatal(format!("reading {}: {e}", self.path.display())))??;
        for (uid, body) in bodies {
            each(uid, body);
        }
        Ok(())
    }
}

fn file_error(path: &Path, e: &std::io::Error) -> Error {
    Error::fatal(format!(
        "cannot read the Takeout export {}: {e}; check [source] path and the file's permissions",
        path.display()
    ))
}

/// Longest piece of a line the indexer reads at once: a file without line
/// breaks (or with a line of gigabytes) is read in pieces of this size.
const READ_PIECE: u64 = 1 << 20;
/// Most of a message's header block the indexer keeps to read its labels,
/// dates and Message-ID; a longer header block is counted, not kept.
const HEADER_KEPT_MAX: usize = 4 << 20;

/// The message the indexer is reading: what an [`Entry`] needs, without
/// the body (memory stays bounded whatever the size of a message).
struct Reading {
    from_line: Vec<u8>,
    offset: u64,
    /// The header block, up to [`HEADER_KEPT_MAX`], with its blank line.
    header: Vec<u8>,
    /// Bytes of the header block past [`HEADER_KEPT_MAX`], not kept.
    header_dropped: u64,
    in_header: bool,
    /// Bytes of the body (after the header block's blank line).
    body_len: u64,
    /// Body lines quoted as `>From ` (one `>` is removed from each).
    body_quoted: u64,
    /// The last bytes of the message, to drop the blank line before the
    /// next separator.
    tail: Vec<u8>,
}

impl Reading {
    fn new(from_line: Vec<u8>, offset: u64) -> Reading {
        Reading {
            from_line,
            offset,
            header: Vec::new(),
            header_dropped: 0,
            in_header: true,
            body_len: 0,
            body_quoted: 0,
            tail: Vec::new(),
        }
    }

    /// One piece of the message: a whole line, or a part of a long one
    /// (`line_start` says whether it begins a line).
    fn add(&mut self, piece: &[u8], line_start: bool) {
        self.tail.extend_from_slice(piece);
        if self.tail.len() > 3 {
            self.tail.drain(..self.tail.len() - 3);
        }
        if self.in_header {
            let room = HEADER_KEPT_MAX - self.header.len();
            let kept = piece.len().min(room);
            self.header.extend_from_slice(&piece[..kept]);
            self.header_dropped += (piece.len() - kept) as u64;
            if line_start && (piece == b"\n" || piece == b"\r\n") {
                self.in_header = false;
            }
            return;
        }
        self.body_len += piece.len() as u64;
        if line_start && is_quoted_from(piece) {
            self.body_quoted += 1;
        }
    }

    /// The entry for it. A blank line that ends it belongs to the mbox
    /// (it comes before the next `From_` line, or ends the file).
    fn finish(mut self) -> Option<Entry> {
        let len = self.header.len() as u64 + self.header_dropped + self.body_len;
        let trimmed = if self.tail.ends_with(b"\n\r\n") {
            2
        } else if self.tail.ends_with(b"\n\n") {
            1
        } else {
            0
        };
        if self.in_header {
            // No body: the blank line trimmed is the header's.
            let keep = self.header.len().saturating_sub(trimmed as usize);
            self.header.truncate(keep);
        } else {
            self.body_len = self.body_len.saturating_sub(trimmed);
        }
        entry(
            &self.from_line,
            self.offset,
            &self.header,
            len - trimmed,
            self.header_dropped + self.body_len - self.body_quoted,
        )
    }
}

/// Whether a line is an mboxrd-quoted `From ` line (`>From `, `>>From `).
fn is_quoted_from(line: &[u8]) -> bool {
    line.starts_with(b">") && {
        let stripped = line.iter().position(|&b| b != b'>').map_or(&[][..], |p| &line[p..]);
        stripped.starts_with(b"From ")
    }
}

/// Reads the whole file once, message by message, keeping of each only
/// its header block and counts: memory is bounded by
/// [`HEADER_KEPT_MAX`] and [`READ_PIECE`], not by the size of a message.
fn build_index(path: &Path) -> Result<Index> {
    let file = File::open(path).map_err(|e| file_error(path, &e))?;
    let meta = file.metadata().map_err(|e| file_error(path, &e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let validity = ((meta.len() ^ modified.rotate_left(32)) as u32 ^ (meta.len() >> 32) as u32).max(1);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut entries = Vec::new();
    let mut pos: u64 = 0;
    let mut line = Vec::new();
    let mut current: Option<Reading> = None;
    let mut previous_empty = true;
    let mut line_start = true;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(READ_PIECE)
            .read_until(b'\n', &mut line)
            .map_err(|e| file_error(path, &e))?;
        let at_end = n == 0;
        let separator = !at_end && line_start && previous_empty && line.starts_with(b"From ");
        if at_end || separator {
            if let Some(reading) = current.take()
                && let Some(e) = reading.finish()
            {
                entries.push(e);
            }
            if at_end {
                break;
            }
            current = Some(Reading::new(line.clone(), pos + n as u64));
        } else if let Some(reading) = current.as_mut() {
            reading.add(&line, line_start);
        }
        previous_empty = line_start && (line == b"\n" || line == b"\r\n");
        line_start = line.ends_with(b"\n");
        pos += n as u64;
    }
    let mut folders: BTreeMap<String, (Option<FolderRole>, Vec<u32>)> = BTreeMap::new();
    for (i, e) in entries.iter_mut().enumerate() {
        let uid = i as u32 + 1;
        e.meta.uid = uid;
        let mut hidden = false;
        for label in &e.labels {
            let (name, role) = label_folder(label);
            hidden |= matches!(role, Some(FolderRole::Junk | FolderRole::Trash));
            folders.entry(name).or_insert((role, Vec::new())).1.push(uid);
        }
        // Gmail's All Mail holds everything but Spam and Trash.
        if !hidden {
            folders
                .entry("All Mail".to_owned())
                .or_insert((Some(FolderRole::All), Vec::new()))
                .1
                .push(uid);
        }
    }
    Ok(Index {
        entries,
        validity,
        folders,
    })
}

/// The folder a label shows as over IMAP, with its role; `None` name for
/// labels that are not folders.
fn label_folder(label: &str) -> (String, Option<FolderRole>) {
    let role = match label {
        "Inbox" => return ("INBOX".into(), Some(FolderRole::Inbox)),
        "Sent" => Some(FolderRole::Sent),
        "Drafts" => Some(FolderRole::Drafts),
        "Spam" => Some(FolderRole::Junk),
        "Trash" => Some(FolderRole::Trash),
        "Starred" => Some(FolderRole::Flagged),
        "Important" => Some(FolderRole::Important),
        _ => None,
    };
    (label.to_owned(), role)
}

/// Labels Takeout writes that are states or tabs, not folders.
fn is_folder_label(label: &str) -> bool {
    !matches!(label, "Opened" | "Unread" | "Archived" | "Chat" | "") && !label.starts_with("Category ")
}

/// The index entry of a message from its `From_` line, where it starts,
/// its header block as in the file (as much as was kept), its length in
/// the file and the length the rest (the body, and any header bytes not
/// kept) will have once unquoted; `None` for a chat transcript.
fn entry(from_line: &[u8], offset: u64, header_raw: &[u8], len: u64, body_len: u64) -> Option<Entry> {
    let labels_all = crate::headers::value(header_raw, "x-gmail-labels")
        .map(|v| split_labels(&v))
        .unwrap_or_default();
    if labels_all.iter().any(|l| l == "Chat") {
        return None;
    }
    let cleaned = clean(header_raw);
    let header = crate::headers::block(&cleaned);
    let (gm_msgid, from_date) = parse_from_line(from_line);
    let mut flags = Vec::new();
    if !labels_all.iter().any(|l| l == "Unread") {
        flags.push("\\Seen".to_owned());
    }
    if labels_all.iter().any(|l| l == "Starred") {
        flags.push("\\Flagged".to_owned());
    }
    let internal_date = from_date
        .or_else(|| {
            mail_parser::MessageParser::new()
                .parse_headers(header)
                .and_then(|m| m.date().map(|d| d.to_timestamp()))
        })
        .unwrap_or(0);
    Some(Entry {
        offset,
        len,
        meta: MessageMeta {
            uid: 0,
            flags: Flags(flags),
            internal_date,
            size: cleaned.len() as u64 + body_len,
            message_id: crate::headers::message_id(header),
            subject: crate::headers::subject(header),
            gm_msgid,
        },
        labels: labels_all.into_iter().filter(|l| is_folder_label(l)).collect(),
    })
}

/// `From 1278455344230334865@xxx Wed Feb 16 22:59:48 +0000 2022`: Gmail's
/// message id and the received time, when they are there.
fn parse_from_line(line: &[u8]) -> (Option<u64>, Option<i64>) {
    let text = String::from_utf8_lossy(line);
    let rest = text.trim_end().strip_prefix("From ").unwrap_or("");
    let (sender, date) = rest.split_once(' ').unwrap_or((rest, ""));
    let gm = sender.strip_suffix("@xxx").and_then(|id| id.parse::<u64>().ok());
    let date = chrono::DateTime::parse_from_str(date.trim(), "%a %b %d %H:%M:%S %z %Y")
        .ok()
        .map(|d| d.timestamp());
    (gm, date)
}

/// The message as it was received: one `>` removed from `>From ` lines
/// (mboxrd), and Takeout's `X-GM-THRID` and `X-Gmail-Labels` headers left
/// out.
fn clean(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_header = true;
    let mut skipping = false;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if in_header {
            if line == b"\n" || line == b"\r\n" {
                in_header = false;
                skipping = false;
            } else if skipping && (line.starts_with(b" ") || line.starts_with(b"\t")) {
                continue;
            } else {
                let lower = line.to_ascii_lowercase();
                skipping = lower.starts_with(b"x-gm-thrid:") || lower.starts_with(b"x-gmail-labels:");
                if skipping {
                    continue;
                }
            }
        }
        out.extend_from_slice(if is_quoted_from(line) { &line[1..] } else { line });
    }
    out
}

/// `Inbox,"Work, Stuff",Important` → the labels, quotes removed.
fn split_labels(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_owned()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_owned());
    out.retain(|l| !l.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("all.mbox");
        std::fs::write(&p, content).unwrap();
        (dir, p)
    }

    const MBOX: &[u8] = b"From 1278455344230334865@xxx Wed Feb 16 22:59:48 +0000 2022\r\n\
X-GM-THRID: 1278455344230334865\r\n\
X-Gmail-Labels: Inbox,\"Work, Stuff\",Opened,Category Personal,\r\n Starred\r\n\
Message-ID: <one@example.com>\r\n\
Subject: first\r\n\
\r\n\
>From the start\r\n\
>>From quoted once\r\n\
From here on, not a separator\r\n\
\r\n\
From 1278455344230334866@xxx Thu Feb 17 08:00:00 +0000 2022\r\n\
X-GM-THRID: 1278455344230334866\r\n\
X-Gmail-Labels: Spam,Unread\r\n\
Message-ID: <two@example.com>\r\n\
\r\n\
spam body\r\n\
\r\n\
From 1@xxx Thu Feb 17 09:00:00 +0000 2022\r\n\
X-Gmail-Labels: Chat\r\n\
\r\n\
a chat\r\n";

    #[test]
    fn messages_are_split_unquoted_and_freed_of_takeout_headers() {
        let (_d, p) = write(MBOX);
        let index = build_index(&p).unwrap();
        assert_eq!(index.entries.len(), 2, "the chat transcript is left out");
        let first = &index.entries[0];
        let raw = &MBOX[first.offset as usize..(first.offset + first.len) as usize];
        let cleaned = clean(raw);
        assert_eq!(
            cleaned,
            b"Message-ID: <one@example.com>\r\nSubject: first\r\n\r\nFrom the start\r\n>From quoted once\r\nFrom here on, not a separator\r\n"
        );
        assert_eq!(first.meta.size, cleaned.len() as u64);
        assert_eq!(first.meta.gm_msgid, Some(1278455344230334865));
        assert_eq!(first.meta.internal_date, 1_645_052_388);
        assert_eq!(first.meta.message_id.as_deref(), Some("<one@example.com>"));
        assert_eq!(first.meta.flags, Flags(vec!["\\Seen".into(), "\\Flagged".into()]));
        assert_eq!(first.labels, ["Inbox", "Work, Stuff", "Starred"]);
        let second = &index.entries[1];
        assert_eq!(second.meta.flags, Flags::default(), "Unread: not seen");
        assert_eq!(second.meta.uid, 2);
    }

    #[test]
    fn sizes_come_from_counts_not_from_bodies_held_in_memory() {
        // A body of one 3 MiB line with a quoted From in it, a body line
        // quoted twice, a long header block, and a last message without a
        // line break at all (a separator-less file).
        let mut mbox = b"From 1 Wed Feb 16 22:59:48 +0000 2022\r\nX-Gmail-Labels: Inbox\r\nSubject: long\r\n".to_vec();
        for i in 0..2000 {
            mbox.extend_from_slice(format!("X-Trace-{i}: {}\r\n", "t".repeat(3000)).as_bytes());
        }
        mbox.extend_from_slice(b"\r\n");
        mbox.extend_from_slice(&vec![b'x'; 3 << 20]);
        mbox.extend_from_slice(b">From inside a long line\r\n>>From quoted twice\r\n\r\n");
        mbox.extend_from_slice(b"From 2 Wed Feb 16 22:59:49 +0000 2022\r\nX-Gmail-Labels: Inbox\r\n\r\n");
        mbox.extend_from_slice(&vec![b'y'; 2 << 20]);
        let (_d, p) = write(&mbox);
        let index = build_index(&p).unwrap();
        assert_eq!(index.entries.len(), 2);
        for e in &index.entries {
            let raw = &mbox[e.offset as usize..(e.offset + e.len) as usize];
            assert_eq!(
                e.meta.size,
                clean(raw).len() as u64,
                "size as if the message were read whole"
            );
        }
        assert_eq!(index.entries[0].meta.subject.as_deref(), Some("long"));
        assert_eq!(index.entries[1].len, 25 + (2 << 20), "to the end of the file");
    }

    #[test]
    fn labels_become_folders_with_roles_and_all_mail_skips_spam() {
        let (_d, p) = write(MBOX);
        let index = build_index(&p).unwrap();
        let f = |n: &str| index.folders.get(n).cloned();
        assert_eq!(f("INBOX"), Some((Some(FolderRole::Inbox), vec![1])));
        assert_eq!(f("Work, Stuff"), Some((None, vec![1])));
        assert_eq!(f("Starred"), Some((Some(FolderRole::Flagged), vec![1])));
        assert_eq!(f("Spam"), Some((Some(FolderRole::Junk), vec![2])));
        assert_eq!(f("All Mail"), Some((Some(FolderRole::All), vec![1])));
        assert!(f("Opened").is_none() && f("Category Personal").is_none());
    }

    #[test]
    fn label_lists_keep_quoted_commas() {
        assert_eq!(
            split_labels("Inbox,\"a, b\",Important, x "),
            ["Inbox", "a, b", "Important", "x"]
        );
        assert!(split_labels("").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn bodies_are_read_back_by_uid() {
        let (_d, p) = write(MBOX);
        let src = MboxSource::new(p);
        let user = SourceLogin {
            email: "a@b".into(),
            login: "a@b".into(),
            secret: crate::secret::Secret::new("x"),
            user_root: None,
        };
        let mut s = src.open(&user).await.unwrap();
        s.examine("Spam").unwrap();
        assert_eq!(s.scan(1).len(), 1);
        let mut got = Vec::new();
        s.fetch_bodies(&[2], |u, b| got.push((u, b))).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].1[..], b"Message-ID: <two@example.com>\r\n\r\nspam body\r\n");
    }
}
