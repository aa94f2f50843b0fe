//! Where mail goes. Every target sits behind the same narrow interface:
//! make sure a folder exists, upload one message, look one up after a
//! crash, list what a folder holds for `cutover verify`, and (where the
//! target can) keep a copy in step with its source on a resync: set its
//! flags again, move it to another folder, delete it, rename its folder.
//! Protocol details (IMAP folder names, Graph folder ids and MAPI
//! properties) stay inside each target's module.

pub mod dav;
pub mod dav_pim;
pub mod graph;
pub mod imap;
pub mod maildir;
pub mod pim;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::model::TargetLogin;
use crate::model::{Flags, ItemKind, MessageKey, TargetFolder, Upload};

/// A target operation under way: the traits below are used as trait
/// objects, so each operation returns its result as a boxed future.
pub type Pending<'a, T> = BoxFuture<'a, Result<T>>;

/// What a kind of target can do beyond storing a message, declared up front
/// so that callers ask instead of trying an operation and matching on the
/// error (the way rclone's backends declare their features). `verify` and
/// `check` list only where [`Capabilities::list`] is set; the one-way sync
/// moves, re-flags, deletes and renames only where the target says it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Lists a folder's messages read-only ([`TargetSession::inventory`]).
    pub list: bool,
    /// Moves a stored message to another folder without uploading it again.
    pub move_messages: bool,
    /// Changes a stored message's read state, flag or keywords in place.
    pub update_flags: bool,
    /// Deletes a stored message.
    pub delete: bool,
    /// Renames a folder in place, keeping what it holds.
    pub rename_folders: bool,
    /// The kinds of item it stores.
    pub kinds: &'static [ItemKind],
    /// The system flags (IMAP spelling) that [`Inventoried::flags`]
    /// reports as each copy holds them: what `cutover verify` compares with
    /// the source's. Graph keeps the read state and the follow-up flag;
    /// IMAP and Maildir also keep `\Answered`.
    pub listed_flags: &'static [&'static str],
}

impl Capabilities {
    /// Stores mail and lists it; nothing is changed after the upload.
    pub const MAIL_APPEND_ONLY: Capabilities = Capabilities {
        list: true,
        move_messages: false,
        update_flags: false,
        delete: false,
        rename_folders: false,
        kinds: &[ItemKind::Mail],
        listed_flags: &["\\Seen", "\\Flagged"],
    };

    pub fn stores(&self, kind: ItemKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// One message as a target's folder listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventoried {
    /// The Message-ID header, angle brackets kept; `None` when it has none.
    pub message_id: Option<String>,
    /// Size in bytes (RFC822.SIZE on IMAP, the file size on Maildir).
    pub size: u64,
    /// The target's own reference to the message (IMAP UID, Maildir file
    /// name, Graph id): what [`TargetSession::compare_content`] reads.
    pub id: String,
    /// The copy's flags as the target holds them, in IMAP spelling: every
    /// flag and keyword but `\Recent` on IMAP, the info letters' flags on
    /// Maildir, `\Seen` (isRead) and `\Flagged` (a flag whose status is
    /// `flagged`) on Graph. Only [`Capabilities::listed_flags`] are
    /// compared with the source's.
    pub flags: Flags,
}

/// A kind of target, shared by every mailbox of a run.
pub trait Target: Send + Sync {
    /// Opens a session writing into one user's mailbox. `run` opens several
    /// per mailbox for parallel uploads.
    fn open<'a>(&'a self, user: &'a TargetLogin) -> Pending<'a, Box<dyn TargetSession>>;

    /// One line for logs and the run header ("IMAP 127.0.0.1:143").
    fn describe(&self) -> String;

    /// What this kind of target can do; see [`Capabilities`].
    fn capabilities(&self) -> Capabilities;

    /// Makes the labels a user's messages carry (a label-based source's,
    /// in categories mode) known to a target that keeps a list of them
    /// apart from the messages: Exchange's master category list, without
    /// which Outlook does not show a message's category in its list.
    /// Called once per mailbox per run, before its messages are copied;
    /// what is in the list already is left as it is. With no labels it
    /// only reads the list (`cutover check`). `Ok(Some(note))`: the target
    /// would not take them (Graph: the app lacks MailboxSettings.ReadWrite),
    /// with what the admin should do; mail is copied all the same. The
    /// default, for targets that need no list (IMAP keywords), does
    /// nothing.
    fn register_labels<'a>(&'a self, user: &'a TargetLogin, labels: &'a [String]) -> Pending<'a, Option<String>> {
        let _ = (user, labels);
        async move { Ok(None) }.boxed()
    }

    /// Where a target that paces itself (Graph's per-mailbox budgets, its
    /// Retry-After gate) reports what each mailbox waits on; called once
    /// by the run before any session is opened. The default, for targets
    /// without pacing of their own, does nothing.
    fn report_waits(&self, waits: crate::wait::Waits) {
        let _ = waits;
    }
}

/// Writes into one mailbox.
pub trait TargetSession: Send {
    /// Makes sure the folder exists and returns the target's reference to
    /// it, which the checkpoint keeps. `known` is the reference a previous
    /// run stored, so a resync does not rediscover folders.
    fn ensure_folder<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, String>;

    /// Stores one message; returns the target's id for it once the target
    /// confirmed it.
    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, String>;

    /// Stores several messages of one folder: one result per message, in
    /// order. A result list shorter than `messages` means the rest are
    /// unsettled (the connection failed); the last result then holds why.
    /// Targets that can pipeline override this.
    fn upload_many<'a>(&'a mut self, folder: &'a str, messages: &'a [Upload]) -> BoxFuture<'a, Vec<Result<String>>> {
        async move {
            let mut out = Vec::with_capacity(messages.len());
            for m in messages {
                let r = self.upload(folder, m).await;
                let stop = matches!(&r, Err(e) if e.is_retryable() || e.kind == crate::error::ErrorKind::Fatal);
                out.push(r);
                if stop {
                    break;
                }
            }
            out
        }
        .boxed()
    }

    /// Looks for a message an interrupted run may already have stored.
    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> Pending<'a, Option<String>>;

    /// Read-only listing of one folder for `cutover verify` and `cutover
    /// check`: the Message-ID (angle brackets kept, as the source scan keeps
    /// them), size in bytes and flags of every message in it. Must not create the
    /// folder or change anything: a folder that does not exist is an empty
    /// list, not an error. `known` is the reference a previous run stored
    /// (what [`TargetSession::ensure_folder`] returned); without it the
    /// target works the folder out from `folder` as `ensure_folder` would.
    ///
    /// IMAP: EXAMINE, then `UID FETCH 1:* (FLAGS RFC822.SIZE
    /// BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`. Maildir: the files of `cur/`
    /// and `new/`, flags from their info (`:2,FRS`). Graph:
    /// `GET /users/{id}/mailFolders/{folder}/messages?$select=internetMessageId,isRead,flag`
    /// (following `@odata.nextLink`), where a size the API does not report
    /// may be approximated by `PR_MESSAGE_SIZE` (`singleValueExtendedProperties`
    /// id `Integer 0x0E08`); verify matches on Message-ID first.
    ///
    /// Only called where [`Capabilities::list`] is declared; the default,
    /// for a target that cannot list, refuses with a fatal error.
    fn inventory<'a>(&'a mut self, folder: &'a TargetFolder, known: Option<&'a str>) -> Pending<'a, Vec<Inventoried>> {
        let _ = (folder, known);
        async move { Err(Error::fatal("this target cannot list a folder's messages")) }.boxed()
    }

    /// Reads what the target holds for `item` (from [`TargetSession::inventory`]
    /// of the same folder) and compares it with the source message's bytes:
    /// `None` when the copy carries the source's content, else what differs,
    /// worded for the admin. Read-only, like `inventory`.
    ///
    /// IMAP and Maildir compare the bytes (line ends aside: servers store
    /// CRLF or LF). Graph compares what Exchange made of the message: the
    /// text of its body and each attachment's name, size and SHA-256, or
    /// the MIME bytes where the item was imported and Graph returns them.
    fn compare_content<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
        item: &'a Inventoried,
        source: &'a [u8],
    ) -> Pending<'a, Option<String>> {
        let _ = (folder, known, item, source);
        async move { Err(Error::fatal("this target cannot read a message back")) }.boxed()
    }

    /// Sets a stored message's flags to `flags` and `labels` — exactly what an
    /// upload of the message with these marks would have stored (read state,
    /// \Flagged, \Answered, \Draft, keywords; labels as the target stores them:
    /// IMAP keywords, Graph categories), replacing what the copy had. `folder`
    /// is the folder reference `ensure_folder` returned, `id` the target's id of
    /// the copy as `upload`/`find` returned it. Returns the copy's id afterwards
    /// (a Maildir file is renamed; IMAP and Graph keep theirs).
    ///
    /// IMAP: `UID STORE uid FLAGS (...)` in the selected folder, the same
    /// list an APPEND carries less what the folder's PERMANENTFLAGS cannot
    /// keep. Maildir: the file renamed to its new info letters. Graph:
    /// `PATCH /users/{id}/messages/{id}` with `isRead`, `flag` and
    /// `categories`. A copy that is gone, or can no longer be addressed by
    /// its id (IMAP: another UIDVALIDITY, no APPENDUID), is an item error.
    ///
    /// Only called where [`Capabilities::update_flags`] is declared; the
    /// default refuses with a fatal error.
    fn update_flags<'a>(
        &'a mut self,
        folder: &'a str,
        id: &'a str,
        flags: &'a Flags,
        labels: &'a [String],
    ) -> Pending<'a, String> {
        let _ = (folder, id, flags, labels);
        async move { Err(Error::fatal("this target cannot change a copy's flags")) }.boxed()
    }

    /// Moves a stored copy from folder `from` to folder `to` (both
    /// references as `ensure_folder` returned them) without uploading it
    /// again; returns its id in `to`. Ids change: IMAP gets a new UID (from
    /// COPYUID), Graph a new id, Maildir keeps the file name in another
    /// directory. The copy keeps its bytes, date and flags.
    ///
    /// IMAP: `UID MOVE` (RFC 6851) where the server offers MOVE, else `UID
    /// COPY`, `UID STORE +FLAGS (\Deleted)` and `UID EXPUNGE` of that UID
    /// alone (RFC 4315 UIDPLUS; a server with neither is an item error,
    /// never a plain EXPUNGE of other messages). Maildir: the file renamed
    /// into the other folder's `cur/`. Graph: `POST
    /// /users/{id}/messages/{id}/move` with `destinationId`.
    ///
    /// An item error means nothing was changed: the copy is gone from
    /// `from` (deleted, moved by someone else), its id can no longer
    /// address it (IMAP: another UIDVALIDITY), or the target cannot move
    /// without side effects. An empty id back means the copy was moved but
    /// the target did not say under which id (an IMAP server without
    /// UIDPLUS, a Graph answer lost after Exchange moved it), as `upload`
    /// returns an empty id.
    ///
    /// Only called where [`Capabilities::move_messages`] is declared; the
    /// default refuses with a fatal error.
    fn move_message<'a>(&'a mut self, from: &'a str, id: &'a str, to: &'a str) -> Pending<'a, String> {
        let _ = (from, id, to);
        async move { Err(Error::fatal("this target cannot move a copy to another folder")) }.boxed()
    }

    /// Deletes a stored copy (`folder` and `id` as for
    /// [`TargetSession::update_flags`]). A copy already gone is not an
    /// error; an id that cannot name a copy of this folder any more (IMAP:
    /// another UIDVALIDITY, no APPENDUID) is an item error, and nothing is
    /// deleted.
    ///
    /// IMAP: `UID STORE uid +FLAGS.SILENT (\Deleted)` and `UID EXPUNGE uid`
    /// (UIDPLUS required, else an item error: never a plain EXPUNGE, which
    /// would remove every message another client marked \Deleted).
    /// Maildir: the file unlinked. Graph: `DELETE /users/{id}/messages/{id}`,
    /// which Exchange keeps in Recoverable Items for 14 days by default.
    ///
    /// Only called where [`Capabilities::delete`] is declared; the default
    /// refuses with a fatal error.
    fn delete_message<'a>(&'a mut self, folder: &'a str, id: &'a str) -> Pending<'a, ()> {
        let _ = (folder, id);
        async move { Err(Error::fatal("this target cannot delete a copy")) }.boxed()
    }

    /// Renames or moves a folder, with its subfolders and messages, to where
    /// `to` places it (as `ensure_folder` would place `to`); returns its new
    /// reference. `known` is its current reference. Missing parents of the
    /// new place are created; a folder already there, the inbox, a folder
    /// the target keeps for a role of its own (Graph's well-known folders)
    /// or a folder that is gone is an item error, and nothing is changed. A
    /// folder already where `to` places it is left as it is.
    ///
    /// IMAP: `RENAME old new` (the server renames the subfolders with it).
    /// Maildir: the `.Folder` directory and every `.Folder.Child` directory
    /// (Maildir++ keeps subfolders as sibling directories). Graph: `PATCH
    /// /users/{id}/mailFolders/{id}` with `displayName` and `POST
    /// .../mailFolders/{id}/move` with `destinationId` for another parent.
    /// Copies' ids stay valid where the target keeps them (Graph and
    /// Maildir; IMAP servers keep UIDs across a RENAME).
    ///
    /// Only called where [`Capabilities::rename_folders`] is declared; the
    /// default refuses with a fatal error.
    fn rename_folder<'a>(&'a mut self, known: &'a str, to: &'a TargetFolder) -> Pending<'a, String> {
        let _ = (known, to);
        async move { Err(Error::fatal("this target cannot rename a folder")) }.boxed()
    }

    /// The messages this session stored in another form than the source's
    /// since the last call, each with a sentence for the report (Graph's
    /// json mode: a body too large for one request cut short, with the
    /// original attached). Most targets store the bytes: none.
    fn take_conversions(&mut self) -> Vec<(MessageKey, String)> {
        Vec::new()
    }

    /// For `cutover check`: tries what a migrate will do with folders and
    /// says where they will go. `Ok` carries a note for the admin (`None`
    /// when there is nothing to say); `Err` is why folders could not be
    /// created, with the fix. Leaves nothing behind. The default, for
    /// targets whose folders need no rehearsal (Graph creates under the
    /// mailbox's root, a Maildir's directory is checked for writing
    /// separately), says nothing.
    fn rehearse_folders(&mut self) -> Pending<'_, Option<String>> {
        async move { Ok(None) }.boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Compares a copy's bytes with the source's, CRLF and LF taken as the same
/// line end (Maildir and many IMAP servers store LF, the wire carries
/// CRLF): `None` when equal, else what differs.
pub fn compare_bytes(source: &[u8], target: &[u8]) -> Option<String> {
    fn lines(b: &[u8]) -> impl Iterator<Item = u8> + '_ {
        b.iter()
            .enumerate()
            .filter(move |&(i, &c)| !(c == b'\r' && b.get(i + 1) == Some(&b'\n')))
            .map(|(_, &c)| c)
    }
    if lines(source).eq(lines(target)) {
        return None;
    }
    let (s, t) = (lines(source).count(), lines(target).count());
    let common = lines(source).zip(lines(target)).take_while(|(a, b)| a == b).count();
    Some(if t < s && common == t {
        format!("the copy is cut short: it holds the first {t} bytes of the source's {s} (line ends aside)")
    } else {
        format!(
            "the copy's bytes differ from the source's from byte {common} on ({t} bytes against {s}, line ends aside)"
        )
    })
}
