//! What the pipeline tells the outside world. Progress displays, JSON
//! output and reports consume these; none of them reaches into the
//! pipeline.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        users: usize,
        target: String,
    },
    UserStarted {
        user: String,
    },
    FolderScanned {
        user: String,
        folder: String,
        messages: u32,
        new: usize,
    },
    Planned {
        user: String,
        to_copy: usize,
        bytes: u64,
        skipped: usize,
        already_copied: u64,
    },
    /// `migrate --dry-run`: what a real run would do for this user.
    WouldCopy {
        user: String,
        to_copy: usize,
        bytes: u64,
        already_copied: u64,
        skipped: std::collections::BTreeMap<String, u64>,
    },
    BatchCopied {
        user: String,
        folder: String,
        messages: u64,
        bytes: u64,
    },
    ItemSkipped {
        user: String,
        folder: String,
        uid: u32,
        size: u64,
        reason: String,
    },
    ItemFailed {
        user: String,
        folder: String,
        uid: u32,
        reason: String,
    },
    Throttled {
        user: String,
        delay_ms: u64,
        reason: String,
    },
    /// What the mailbox waits on changed (sampled every second): `on` is
    /// the limit that binds it now (`source_slot`, `in_flight_bytes`,
    /// `target_budget`, `throttled`, `source_rate`, `login_rate`), `None`
    /// once it waits on nothing. Times are Unix seconds; `until` is known
    /// only when a server said how long to wait.
    Waiting {
        user: String,
        on: Option<String>,
        since: i64,
        until: Option<i64>,
    },
    UserFinished {
        user: String,
        state: String,
        copied: u64,
        bytes: u64,
        failed: u64,
        /// Copies made before whose flags were changed to the source's.
        flags_updated: u64,
        /// Copies made before, moved to where the source filed them.
        moved: u64,
        /// Target folders renamed as on the source.
        renamed: u64,
        /// Copies of messages this sync found deleted on the source, kept
        /// in the target (the default).
        deleted_kept: u64,
        /// Copies of messages deleted on the source, deleted from the
        /// target (`--mirror-deletions`).
        deleted: u64,
        /// Contacts and events this sync wrote, failed and kept
        /// (`[contacts_calendars]`); absent when they are not copied.
        #[serde(skip_serializing_if = "Option::is_none")]
        pim: Option<PimFinished>,
        error: Option<String>,
    },
    RunFinished {
        users_done: usize,
        users_failed: usize,
        copied: u64,
        bytes: u64,
        interrupted: bool,
    },
    /// `migrate --every`: pass `pass` (1 for the first) starts; its
    /// `run_started` … `run_finished` follow. Times are Unix seconds.
    PassStarted {
        pass: u64,
        every_seconds: u64,
        started_at: i64,
    },
    /// `migrate --every`: the pass is over; `outcome` is "done",
    /// "partial" or "interrupted".
    PassFinished {
        pass: u64,
        outcome: String,
        started_at: i64,
        finished_at: i64,
    },
    /// `migrate --every`: pass `pass` starts at `at`, `in_seconds` from now
    /// (0 when the last pass took longer than the interval).
    NextPass {
        pass: u64,
        at: i64,
        in_seconds: u64,
    },
    /// `migrate --every`: the loop ends after `passes` passes, stopped by a
    /// signal between passes (`while_waiting`: the last pass's outcome
    /// stands) or during a pass (that pass was interrupted).
    PassesStopped {
        passes: u64,
        while_waiting: bool,
    },
}

/// Where events go. Cheap to clone; sending never blocks the pipeline.
#[derive(Clone)]
pub struct Events(tokio::sync::mpsc::UnboundedSender<Event>);

impl Events {
    pub fn channel() -> (Events, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Events(tx), rx)
    }

    pub fn send(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

/// What one sync did with a user's contacts and events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PimFinished {
    pub contacts_written: u64,
    pub contacts_failed: u64,
    /// Deleted on the source during this sync; the copy is kept.
    pub contacts_kept: u64,
    pub events_written: u64,
    pub events_failed: u64,
    pub events_kept: u64,
}
