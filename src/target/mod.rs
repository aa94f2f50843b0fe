//! Where mail goes. Every target sits behind the same narrow interface:
//! make sure a folder exists, upload one message, and look one up after a
//! crash. Protocol details (IMAP folder names, Graph folder ids and MAPI
//! properties) stay inside each target's module.

pub mod graph;
pub mod imap;
pub mod maildir;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::model::{TargetFolder, Upload};
use crate::roster::UserJob;

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

    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
