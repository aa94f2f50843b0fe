//! Where a message's fate is written down: every outcome of the copy goes
//! through [`settle`], which records it in the checkpoint (through the
//! run's one writer) and tells the progress view, together, so the two can
//! never tell different stories.

use crate::checkpoint::Record;
use crate::event::Event;
use crate::model::SkipReason;

use super::Shared;

/// The source folder a message belongs to, as the checkpoint and the
/// progress view name it.
#[derive(Clone, Copy)]
pub(super) struct Place<'a> {
    pub user: &'a str,
    pub folder_id: i64,
    pub folder: &'a str,
}

/// What happened to one message.
pub(super) enum Fate {
    /// An upload is about to start: if the run dies now, the next one looks
    /// the message up in the target before sending it again.
    InFlight,
    /// The target confirmed it; `message_id` comes from the copied body,
    /// `converted` says how the target changed its form, if it did.
    Copied {
        target_id: String,
        message_id: Option<String>,
        /// For a message without a Message-ID, its
        /// [`crate::headers::content_key`].
        content_key: Option<String>,
        converted: Option<String>,
    },
    /// This message failed; a rerun tries again.
    Failed { reason: String },
    /// Left out for `reason`; `announce` (with the text the admin sees)
    /// reports it as it happens, which label rules skip without, since a
    /// Gmail mailbox has thousands.
    Skipped {
        reason: SkipReason,
        size: u64,
        announce: Option<String>,
    },
    /// No longer in the source.
    Gone,
}

/// Records the fate of message `uid` of `place` and tells the progress
/// view what it needs to know of it.
pub(super) fn settle(shared: &Shared, place: Place<'_>, uid: u32, fate: Fate) {
    let folder_id = place.folder_id;
    match fate {
        Fate::InFlight => shared.recorder.record(Record::InFlight { folder_id, uid }),
        Fate::Copied {
            target_id,
            message_id,
            content_key,
            converted,
        } => {
            tracing::trace!(user = %place.user, folder = %place.folder, uid, target_id = %target_id, "copied");
            shared.recorder.record(Record::Copied {
                folder_id,
                uid,
                target_id,
                message_id,
                converted,
            });
            if let Some(key) = content_key {
                shared.recorder.record(Record::ContentKey { folder_id, uid, key });
            }
        }
        Fate::Failed { reason } => {
            shared.recorder.record(Record::Failed {
                folder_id,
                uid,
                reason: reason.clone(),
            });
            shared.events.send(Event::ItemFailed {
                user: place.user.to_owned(),
                folder: place.folder.to_owned(),
                uid,
                reason,
            });
        }
        Fate::Skipped { reason, size, announce } => {
            shared.recorder.record(Record::Skipped { folder_id, uid, reason });
            if let Some(text) = announce {
                shared.events.send(Event::ItemSkipped {
                    user: place.user.to_owned(),
                    folder: place.folder.to_owned(),
                    uid,
                    size,
                    reason: text,
                });
            }
        }
        Fate::Gone => shared.recorder.record(Record::Gone { folder_id, uid }),
    }
}
