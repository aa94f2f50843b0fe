//! Reading the source mailbox. Strictly read-only: IMAP folders are opened
//! with EXAMINE and bodies fetched with BODY.PEEK[], so a migration never
//! changes a flag or a message on the source; a Google Takeout mbox is only
//! read.
//!
//! [`Source`] and [`Session`] put both kinds behind the few calls `run`
//! makes: list folders, open one, scan its metadata, fetch bodies by UID.

pub mod dav;
pub mod imap;
pub mod mbox;
pub mod pim;
pub mod pim_files;

use bytes::Bytes;

use crate::error::Result;
use crate::imap::MailboxState;
use crate::model::{Headers, ItemKind, MessageMeta, ScanDepth, SourceFolder, SourceLogin};

pub use self::imap::{ImapSource, SourceSession};
pub use self::mbox::{MboxSession, MboxSource};

/// What a kind of source offers, declared so callers ask instead of
/// matching on its variant. Per-session facts a server announces at login
/// (Gmail's extensions, STATUS=SIZE) are asked of the [`Session`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Several sessions per mailbox read in parallel (an IMAP server); an
    /// mbox file is read by one.
    pub parallel_sessions: bool,
    /// The kinds of item it reads.
    pub kinds: &'static [ItemKind],
}

/// Where mail is read from, shared by every mailbox of a run.
#[derive(Clone)]
pub enum Source {
    Imap(ImapSource),
    Mbox(MboxSource),
}

/// One open source mailbox.
pub enum Session {
    // Boxed: an IMAP connection is far larger than an mbox reader.
    Imap(Box<SourceSession>),
    Mbox(MboxSession),
}

impl Source {
    pub async fn open(&self, user: &SourceLogin) -> Result<Session> {
        Ok(match self {
            Source::Imap(s) => Session::Imap(Box::new(s.open(user).await?)),
            Source::Mbox(s) => Session::Mbox(s.open(user).await?),
        })
    }

    /// What the per-host connection cap counts against: the server, or the
    /// user's own file for an mbox (no server to spare).
    pub fn host_key(&self, user: &SourceLogin) -> String {
        match self {
            Source::Imap(s) => format!("{}:{}", s.endpoint().host, s.endpoint().port),
            Source::Mbox(s) => format!("mbox:{}", s.path_for(&user.email).display()),
        }
    }

    /// What this kind of source offers; see [`Capabilities`].
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Source::Imap(_) => Capabilities {
                parallel_sessions: true,
                kinds: &[ItemKind::Mail],
            },
            Source::Mbox(_) => Capabilities {
                parallel_sessions: false,
                kinds: &[ItemKind::Mail],
            },
        }
    }
}

impl Session {
    pub fn conn_broken(&self) -> bool {
        match self {
            Session::Imap(s) => s.conn_broken(),
            Session::Mbox(_) => false,
        }
    }

    pub fn has_gmail_extensions(&self) -> bool {
        match self {
            Session::Imap(s) => s.has_gmail_extensions(),
            // A Takeout export is Gmail: its labels follow Gmail's rules.
            Session::Mbox(_) => true,
        }
    }

    pub async fn folders(&mut self) -> Result<Vec<SourceFolder>> {
        match self {
            Session::Imap(s) => s.folders().await,
            Session::Mbox(s) => Ok(s.folders()),
        }
    }

    pub async fn examine(&mut self, wire_name: &str) -> Result<MailboxState> {
        match self {
            Session::Imap(s) => s.examine(wire_name).await,
            Session::Mbox(s) => s.examine(wire_name),
        }
    }

    /// Whether a folder the listing no longer shows is gone: `false` only
    /// when the server says so. An mbox file's folders never go.
    pub async fn folder_exists(&mut self, wire_name: &str) -> Result<bool> {
        match self {
            Session::Imap(s) => s.folder_exists(wire_name).await,
            Session::Mbox(_) => Ok(true),
        }
    }

    pub fn examined(&self) -> Option<&str> {
        match self {
            Session::Imap(s) => s.examined(),
            Session::Mbox(s) => s.examined(),
        }
    }

    /// An mbox index always has the headers (the file is read whole to
    /// build it), whatever `depth` asks.
    pub async fn scan(&mut self, from_uid: u32, depth: ScanDepth) -> Result<Vec<MessageMeta>> {
        match self {
            Session::Imap(s) => s.scan(from_uid, depth).await,
            Session::Mbox(s) => Ok(s.scan(from_uid)),
        }
    }

    pub async fn headers(&mut self, uids: &[u32]) -> Result<Vec<Headers>> {
        match self {
            Session::Imap(s) => s.headers(uids).await,
            Session::Mbox(s) => {
                let wanted: std::collections::HashSet<u32> = uids.iter().copied().collect();
                Ok(s.scan(1)
                    .into_iter()
                    .filter(|m| wanted.contains(&m.uid))
                    .map(|m| Headers {
                        uid: m.uid,
                        message_id: m.message_id,
                        subject: m.subject,
                    })
                    .collect())
            }
        }
    }

    /// The flags of the examined folder's messages up to `max_uid` (with
    /// `since`, only those changed after that HIGHESTMODSEQ). An mbox file
    /// does not change between runs: nothing.
    pub async fn flags(&mut self, max_uid: u32, since: Option<u64>) -> Result<Vec<(u32, crate::model::Flags)>> {
        match self {
            Session::Imap(s) => s.flags(max_uid, since).await,
            Session::Mbox(_) => Ok(Vec::new()),
        }
    }

    /// The content key of each of `uids` of the examined folder, read from
    /// its header section. An mbox file never files a message elsewhere:
    /// nothing.
    pub async fn content_keys(&mut self, uids: &[u32]) -> Result<Vec<(u32, String)>> {
        match self {
            Session::Imap(s) => s.content_keys(uids).await,
            Session::Mbox(_) => Ok(Vec::new()),
        }
    }

    /// Which of `uids` the examined folder still holds.
    pub async fn present(&mut self, uids: &[u32]) -> Result<Vec<u32>> {
        match self {
            Session::Imap(s) => s.present(uids).await,
            Session::Mbox(s) => Ok(s.present(uids)),
        }
    }

    /// Where the last folder listing found the mailbox's own folders (the
    /// personal namespace, or the UserRoot), for `check`.
    pub fn namespace_note(&self) -> Option<String> {
        match self {
            Session::Imap(s) => s.namespace_note(),
            Session::Mbox(_) => None,
        }
    }

    /// COMPRESS=DEFLATE is on for this session.
    pub fn is_compressed(&self) -> bool {
        match self {
            Session::Imap(s) => s.is_compressed(),
            Session::Mbox(_) => false,
        }
    }

    /// How [`Session::folder_sizes`] counts, for `check`'s report.
    pub fn size_method(&self) -> &'static str {
        match self {
            Session::Imap(s) if s.has_status_size() => "STATUS=SIZE",
            Session::Imap(_) => "RFC822.SIZE",
            Session::Mbox(_) => "mbox index",
        }
    }

    /// Message count and bytes of each folder where the source has them
    /// cheaply (STATUS=SIZE, the mbox index); `None` for a folder whose
    /// sizes must be read message by message ([`Session::message_sizes`]).
    pub async fn folder_sizes(&mut self, wire_names: &[String]) -> Result<Vec<Option<(u32, u64)>>> {
        match self {
            Session::Imap(s) if s.has_status_size() => s.folder_sizes(wire_names).await,
            Session::Imap(_) => Ok(vec![None; wire_names.len()]),
            Session::Mbox(s) => Ok(s.folder_sizes(wire_names)),
        }
    }

    /// The size of every message of the examined folder.
    pub async fn message_sizes(&mut self) -> Result<Vec<u64>> {
        match self {
            Session::Imap(s) => s.message_sizes().await,
            Session::Mbox(s) => Ok(s.message_sizes()),
        }
    }

    /// How many messages of the examined folder are larger than `bytes`.
    pub async fn count_larger(&mut self, bytes: u64) -> Result<u64> {
        match self {
            Session::Imap(s) => s.count_larger(bytes).await,
            Session::Mbox(s) => Ok(s.message_sizes().into_iter().filter(|&n| n > bytes).count() as u64),
        }
    }

    /// Reads up to `max_each` bytes of the last `count` messages of the
    /// examined folder (which holds `exists`); returns the bytes read: a
    /// sample of the source's read rate.
    pub async fn fetch_sample(&mut self, exists: u32, count: u32, max_each: u64) -> Result<u64> {
        match self {
            Session::Imap(s) => s.fetch_sample(exists, count, max_each).await,
            Session::Mbox(s) => s.fetch_sample(count, max_each).await,
        }
    }

    /// Reads the bodies of `uids`, at most `most` bytes in all (an mbox
    /// file has the sizes its index measured).
    pub async fn fetch_bodies(&mut self, uids: &[u32], most: u64, each: impl FnMut(u32, Bytes)) -> Result<()> {
        match self {
            Session::Imap(s) => s.fetch_bodies(uids, most, each).await,
            Session::Mbox(s) => s.fetch_bodies(uids, each).await,
        }
    }

    pub async fn logout(self) {
        if let Session::Imap(s) = self {
            s.logout().await;
        }
    }
}
