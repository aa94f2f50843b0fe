//! The checkpoint writer of a run: records applied in batched transactions
//! on a thread of its own.

use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use crate::checkpoint::{Checkpoint, CheckpointError, Record};
use crate::error::Error;

/// Writes records in batched transactions on a thread of its own, so the
/// async pipeline never waits on SQLite except when it must (see
/// [`Recorder::flush`]).
#[derive(Clone)]
pub(super) struct Recorder(std_mpsc::Sender<RecorderMsg>);

enum RecorderMsg {
    Record(Record),
    Flush(oneshot::Sender<Result<(), String>>),
}

impl Recorder {
    pub(super) fn start(path: &std::path::Path) -> Result<(Recorder, std::thread::JoinHandle<()>), CheckpointError> {
        let mut cp = Checkpoint::open(path)?;
        let (tx, rx) = std_mpsc::channel::<RecorderMsg>();
        let handle = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut failure: Option<String> = None;
                while let Ok(first) = rx.recv() {
                    let mut records = Vec::new();
                    let mut flushes = Vec::new();
                    let mut next = Some(first);
                    while let Some(msg) = next {
                        match msg {
                            RecorderMsg::Record(r) => records.push(r),
                            RecorderMsg::Flush(done) => flushes.push(done),
                        }
                        next = if records.len() < 4096 { rx.try_recv().ok() } else { None };
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

    pub(super) fn record(&self, r: Record) {
        let _ = self.0.send(RecorderMsg::Record(r));
    }

    /// Waits until everything sent so far is committed.
    pub(super) async fn flush(&self) -> Result<(), Error> {
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
