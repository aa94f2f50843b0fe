//! The checkpoint writer: the one way per-message state is written during
//! a run. The copy loop hands it a [`Record`] for every step of a message
//! (InFlight before its upload starts, Copied only after the target
//! confirmed it, Failed, Skipped, Gone, and the Headers of a message a
//! report will name), and it applies them in batched transactions on a
//! thread of its own with its own SQLite connection, so the async pipeline
//! never waits on SQLite except at the points where it must know the state
//! is on disk ([`Recorder::flush`]).
//!
//! A write that fails stops all later writes (the records after it are
//! dropped, not half-applied) and is reported by every later flush, so the
//! run stops with the checkpoint intact up to the last good batch.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Checkpoint, CheckpointError, Record};
use crate::error::Error;

/// At most this many records go into one transaction.
const BATCH: usize = 4096;

/// A handle on the checkpoint writer thread; clones share the thread. The
/// thread ends when the last handle is dropped, after applying what was
/// sent.
#[derive(Clone)]
pub struct Recorder(std_mpsc::Sender<RecorderMsg>);

enum RecorderMsg {
    Record(Record),
    Flush(oneshot::Sender<Result<(), String>>),
}

impl Recorder {
    /// Opens the state DB at `path` on a connection of its own and starts
    /// the writer thread; join the handle after dropping every [`Recorder`]
    /// to be sure the last records are committed.
    pub fn start(path: &Path) -> Result<(Recorder, JoinHandle<()>), CheckpointError> {
        let mut cp = Checkpoint::open(path)?;
        let (tx, rx) = std_mpsc::channel::<RecorderMsg>();
        let handle = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut failure: Option<String> = None;
                while let Ok(first) = rx.recv() {
                    // Everything already queued goes into the same
                    // transaction, up to BATCH records.
                    let mut records = Vec::new();
                    let mut flushes = Vec::new();
                    let mut next = Some(first);
                    while let Some(msg) = next {
                        match msg {
                            RecorderMsg::Record(r) => records.push(r),
                            RecorderMsg::Flush(done) => flushes.push(done),
                        }
                        next = if records.len() < BATCH {
                            rx.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    if failure.is_none()
                        && !records.is_empty()
                        && let Err(e) = cp.apply(&records)
                    {
                        failure = Some(e.0);
                    }
                    for done in flushes {
                        let _ = done.send(failure.clone().map_or(Ok(()), Err));
                    }
                }
            })
            .map_err(|e| CheckpointError(format!("cannot start the checkpoint writer: {e}")))?;
        Ok((Recorder(tx), handle))
    }

    /// Queues one state change; it is committed with the next batch.
    pub fn record(&self, r: Record) {
        let _ = self.0.send(RecorderMsg::Record(r));
    }

    /// Waits until everything sent so far is committed. A failed write is
    /// fatal for the run: the error says the checkpoint is intact up to
    /// this point.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let _ = self.0.send(RecorderMsg::Flush(tx));
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::fatal(format!(
                "{e}; the checkpoint is intact up to this point, free the problem and run again"
            ))),
            Err(_) => Err(Error::fatal("the checkpoint writer stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{copied, meta, setup};
    use crate::error::ErrorKind;
    use crate::plan::State;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn records_are_visible_after_a_flush() {
        let (dir, mut cp, f) = setup();
        cp.store_scan(f, 1, 3, 2, &[meta(1, "<a@x>", 10), meta(2, "<b@x>", 20)], false)
            .unwrap();
        let (recorder, handle) = Recorder::start(&dir.path().join("state.db")).unwrap();
        recorder.record(Record::InFlight { folder_id: f, uid: 1 });
        recorder.record(copied(f, 1, "t1", None));
        recorder.record(Record::InFlight { folder_id: f, uid: 2 });
        block_on(recorder.flush()).unwrap();
        let rows = cp.messages("a@x.test", false).unwrap();
        let state = |uid| rows.iter().find(|r| r.uid == uid).unwrap().state;
        assert_eq!(state(1), State::Copied);
        assert_eq!(state(2), State::InFlight);
        // Dropping the last handle ends the thread.
        drop(recorder);
        handle.join().unwrap();
    }

    #[test]
    fn a_failed_write_is_reported_by_every_later_flush() {
        let (dir, cp, f) = setup();
        let (recorder, handle) = Recorder::start(&dir.path().join("state.db")).unwrap();
        // The writer finds no table to write to.
        cp.conn.execute_batch("DROP TABLE messages").unwrap();
        recorder.record(Record::Gone { folder_id: f, uid: 1 });
        for _ in 0..2 {
            let e = block_on(recorder.flush()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Fatal);
            assert!(e.message.contains("no such table: messages"), "{e}");
            assert!(
                e.message
                    .ends_with("; the checkpoint is intact up to this point, free the problem and run again"),
                "{e}"
            );
        }
        drop(recorder);
        handle.join().unwrap();
    }
}
