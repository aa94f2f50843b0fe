//! Where mail goes. Every target sits behind the same narrow interface:
//! make sure a folder exists, upload one message, look one up after a
//! crash, and list what a folder holds for `cutover verify`. Protocol details (IMAP folder names, Graph folder ids and MAPI
//! properties) stay inside each target's module.

pub mod graph;
pub mod imap;
pub mod maildir;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::model::{TargetFolder, Upload};
use crate::roster::UserJob;

/// What the default [`TargetSession::inventory`] answers, so callers can
/// tell "this kind of target cannot list" from a real failure.
pub const CANNOT_LIST: &str = "this target cannot be verified (it cannot list a folder's messages)";

/// One message as a target's folder listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventoried {
    /// The Message-ID header, angle brackets kept; `None` when it has none.
    pub message_id: Option<String>,
    /// Size in bytes (RFC822.SIZE on IMAP, the file size on Maildir).
    pub size: u64,
}

/// A kind of target, shared by every mailbox of a run.
pub trait Target: Send + Sync {
    /// Opens a session writing into one user's mailbox. `run` opens several
    /// per mailbox for parallel uploads.
    fn open<'a>(&'a self, user: &'a UserJob) -> BoxFuture<'a, Result<Box<dyn TargetSession>>>;

    /// One line for logs and the run header ("IMAP 127.0.0.1:143").
    fn describe(&self) -> String;
}

/// Writes into one mailbox.
pub trait TargetSession: Send {
    /// Makes sure the folder exists and returns the target's reference to
    /// it, which the checkpoint keeps. `known` is the reference a previous
    /// run stored, so a resync does not rediscover folders.
    fn ensure_folder<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String>>;

    /// Stores one message; returns the target's id for it once the target
    /// confirmed it.
    fn upload<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> BoxFuture<'a, Result<String>>;

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
    fn find<'a>(&'a mut self, folder: &'a str, message: &'a Upload) -> BoxFuture<'a, Result<Option<String>>>;

    /// Read-only listing of one folder for `cutover verify` and `cutover
    /// check`: the Message-ID (angle brackets kept, as the source scan keeps
    /// them) and size in bytes of every message in it. Must not create the
    /// folder or change anything: a folder that does not exist is an empty
    /// list, not an error. `known` is the reference a previous run stored
    /// (what [`TargetSession::ensure_folder`] returned); without it the
    /// target works the folder out from `folder` as `ensure_folder` would.
    ///
    /// IMAP: EXAMINE, then `UID FETCH 1:* (RFC822.SIZE BODY.PEEK[HEADER.FIELDS
    /// (MESSAGE-ID)])`. Maildir: the files of `cur/` and `new/`. Graph:
    /// `GET /users/{id}/mailFolders/{folder}/messages?$select=internetMessageId,size`
    /// (following `@odata.nextLink`), where a size the API does not report
    /// may be approximated by `PR_MESSAGE_SIZE` (`singleValueExtendedProperties`
    /// id `Integer 0x0E08`); verify matches on Message-ID first.
    ///
    /// The default refuses, so a target without a listing still compiles
    /// and `verify` names it instead of guessing.
    fn inventory<'a>(
        &'a mut self,
        folder: &'a TargetFolder,
        known: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Inventoried>>> {
        let _ = (folder, known);
        async move { Err(Error::item(CANNOT_LIST)) }.boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
