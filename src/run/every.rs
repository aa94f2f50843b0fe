//! `cutover migrate --every DURATION`: the resync loop, so keeping the
//! target in sync until cutover needs no cron job (Microsoft's migration
//! batches sync on their own until completed; this is cutover's way).
//!
//! Each pass is the plain migrate ([`super::pass`]), over the same built
//! [`Migration`] (pacing, push-back delays and token caches carry over).
//! The next pass starts `every` after the previous one *started*, at once
//! when that one took longer. The run lock is held for the whole loop, so
//! no other run slips in between passes, and the state DB's `schedule` row
//! says what the loop is doing (`checkpoint/schedule.rs`).
//!
//! A stop (SIGTERM, SIGINT) during a pass stops it as it stops any run
//! (what is in flight finishes and is recorded) and ends the loop; a stop
//! while waiting ends the loop at once. The outcome is the last pass's:
//! done or partial after a stop while waiting, interrupted when a pass was
//! cut short.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Outcome, StopFlag, pass};
use crate::build::{Migration, StartError};
use crate::checkpoint::{self, Checkpoint, CheckpointError, SCHEDULE_HEARTBEAT};
use crate::event::{Event, Events};
use crate::roster::UserJob;

/// Runs passes of migrate every `every` until `stop`; returns the last
/// pass's outcome (see the module doc).
pub async fn migrate_every(
    run: Migration,
    users: Vec<UserJob>,
    events: Events,
    stop: StopFlag,
    every: Duration,
) -> Result<Outcome, StartError> {
    let _lock = checkpoint::lock(&run.state_path)?;
    let schedule = Checkpoint::open(&run.state_path)?;
    let run = Arc::new(run);
    let every_seconds = every.as_secs().max(1);
    let mut passes = 0u64;
    let mut last = Outcome::Done;
    let ended = loop {
        if stop.stopped() {
            // Stopped right as the wait ended: as if while waiting.
            events.send(Event::PassesStopped {
                passes,
                while_waiting: true,
            });
            break Ok(last);
        }
        passes += 1;
        let started = Instant::now();
        let started_at = unix_now();
        noted(schedule.schedule_pass_started(every_seconds, passes, started_at));
        events.send(Event::PassStarted {
            pass: passes,
            every_seconds,
            started_at,
        });
        tracing::info!(pass = passes, "pass started");
        let this = pass(run.clone(), users.clone(), events.clone(), stop.clone(), false);
        last = match beating(&schedule, this).await {
            Ok(outcome) => outcome,
            Err(e) => break Err(e),
        };
        events.send(Event::PassFinished {
            pass: passes,
            outcome: outcome_name(last).to_owned(),
            started_at,
            finished_at: unix_now(),
        });
        tracing::info!(pass = passes, outcome = outcome_name(last), "pass finished");
        if last == Outcome::Interrupted {
            events.send(Event::PassesStopped {
                passes,
                while_waiting: false,
            });
            break Ok(last);
        }
        if stop.stopped() {
            // The stop came after the pass was over: between passes.
            events.send(Event::PassesStopped {
                passes,
                while_waiting: true,
            });
            break Ok(last);
        }
        let next = started + every;
        let wait = next.saturating_duration_since(Instant::now());
        let in_seconds = wait.as_secs_f64().round() as u64;
        let at = unix_now() + in_seconds as i64;
        noted(schedule.schedule_next_pass(at));
        events.send(Event::NextPass {
            pass: passes + 1,
            at,
            in_seconds,
        });
        let waited = tokio::select! {
            () = beating(&schedule, tokio::time::sleep_until(next)) => true,
            () = stop.until_stopped() => false,
        };
        if !waited {
            tracing::info!(passes, "stopped while waiting for the next pass");
            events.send(Event::PassesStopped {
                passes,
                while_waiting: true,
            });
            break Ok(last);
        }
    };
    noted(schedule.clear_schedule());
    ended
}

/// Runs `work`, rewriting the schedule row's `updated_at` every
/// [`SCHEDULE_HEARTBEAT`] seconds meanwhile, so readers know the loop lives.
async fn beating<T>(schedule: &Checkpoint, work: impl Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut beat = tokio::time::interval(Duration::from_secs(SCHEDULE_HEARTBEAT as u64));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = beat.tick() => noted(tokio::task::block_in_place(|| schedule.schedule_heartbeat())),
        }
    }
}

/// The schedule row only informs `status` and the dashboard: a failure to
/// write it is logged, and the passes go on.
fn noted(written: Result<(), CheckpointError>) {
    if let Err(e) = written {
        tracing::warn!("cannot record the schedule of --every for status: {e}");
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// How a pass ended, in the words of `pass_finished` events.
pub(crate) fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Done => "done",
        Outcome::Partial => "partial",
        Outcome::Interrupted => "interrupted",
    }
}
