//! Reading the source mailbox. Strictly read-only: IMAP folders are opened
//! with EXAMINE and bodies fetched with BODY.PEEK[], so a migration never
//! changes a flag or a message on the source; a Google Takeout mbox is only
//! read.
//!
//! [`Source`] and [`Session`] put both kinds behind the few calls `run`
//! makes: list folders, open one, scan its metadata, fetch bodies by UID.

pub mod imap;
pub mod mbox;

use bytes::Bytes;

use crate::error::Result;
use crate::imap::MailboxState;
use crate::model::{Headers, ItemKind, MessageMeta, ScanDepth, SourceFolder};
use crate::roster::UserJob;

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
    pub async fn open(&self, user: &UserJob) -> Result<Session> {
        Ok(match self {
            Source::Imap(s) => Session::Imap(Box::new(s.open(user).await?)),
            Source::Mbox(s) => Session::Mbox(s.open(user).await?),
        })
    }

    /// What the per-host connection cap counts against: the server, or the
    /// user's own file for an mbox (no server to spare).
    pub fn host_key(&self, user: &UserJob) -> String {
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

    pub async fn fetch_bodies(&mut self, uids: &[u32], each: impl FnMut(u32, Bytes)) -> Result<()> {
        match self {
            Session::Imap(s) => s.fetch_bodies(uids, each).await,
            Session::Mbox(s) => s.fetch_bodies(uids, each).await,
        }
    }

    pub async fn logout(self) {
        if let Session::Imap(s) = self {
            s.logout().await;
        }
    }
}
