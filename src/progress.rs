//! Shows a run as it happens, from events only: an indicatif bar on a
//! terminal, a plain line every few seconds otherwise, or one JSON object per
//! event on stdout for other tools to follow.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::event::Event;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redrawn bar on stderr (a terminal).
    Bar,
    /// A line on stderr every few seconds (logs, CI, cron).
    Plain,
    /// JSON lines on stdout.
    Json,
    Quiet,
}

#[derive(Default)]
struct Totals {
    users: usize,
    users_finished: usize,
    to_copy: u64,
    to_copy_bytes: u64,
    copied: u64,
    bytes: u64,
    skipped: u64,
    failed: u64,
}

pub fn spawn(mode: Mode, mut rx: UnboundedReceiver<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut totals = Totals::default();
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} msgs  {msg}  ETA {eta}",
                )
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let mut last_line = Instant::now();
        while let Some(event) = rx.recv().await {
            if mode == Mode::Json {
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut out, &event);
                let _ = out.write_all(b"\n");
                continue;
            }
            let note: Option<String> = match &event {
                Event::RunStarted { users, .. } => {
                    totals.users = *users;
                    None
                }
                Event::Planned { to_copy, bytes, .. } => {
                    totals.to_copy += *to_copy as u64;
                    totals.to_copy_bytes += bytes;
                    None
                }
                Event::WouldCopy {
                    user,
                    to_copy,
                    bytes,
                    already_copied,
                    skipped,
                } => {
                    let reasons: Vec<String> = skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
                    Some(format!(
                        "{user}: would copy {to_copy} messages ({}); {already_copied} already copied; skipped: {}",
                        human_bytes(*bytes),
                        if reasons.is_empty() {
                            "none".to_owned()
                        } else {
                            reasons.join(", ")
                        }
                    ))
                }
                Event::BatchCopied { messages, bytes, .. } => {
                    totals.copied += messages;
                    totals.bytes += bytes;
                    None
                }
                Event::ItemSkipped { .. } => {
                    totals.skipped += 1;
                    None
                }
                Event::ItemFailed {
                    user,
                    folder,
                    uid,
                    reason,
                } => {
                    totals.failed += 1;
                    Some(format!("{user}: {folder} UID {uid} failed: {reason}"))
                }
                Event::Throttled { user, delay_ms, reason } => Some(format!(
                    "{user}: throttled, waiting {:.1}s ({reason})",
                    *delay_ms as f64 / 1000.0
                )),
                Event::UserFinished {
                    user,
                    state,
                    copied,
                    failed,
                    error,
                    ..
                } => {
                    totals.users_finished += 1;
                    Some(match error {
                        Some(e) => format!("{user}: {state} ({copied} copied, {failed} failed): {e}"),
                        None => format!("{user}: {state} ({copied} copied, {failed} failed)"),
                    })
                }
                _ => None,
            };
            let rate = totals.copied as f64 / started.elapsed().as_secs_f64().max(0.001);
            let summary = format!(
                "users {}/{}  {}  {:.0} msg/s  skipped {}  failed {}",
                totals.users_finished,
                totals.users,
                human_bytes(totals.bytes),
                rate,
                totals.skipped,
                totals.failed
            );
            match (&bar, mode) {
                (Some(bar), _) => {
                    bar.set_length(totals.to_copy);
                    bar.set_position(totals.copied);
                    bar.set_message(summary);
                    if let Some(n) = note {
                        bar.println(n);
                    }
                }
                (None, Mode::Plain) => {
                    if let Some(n) = note {
                        eprintln!("{n}");
                    }
                    if last_line.elapsed() >= Duration::from_secs(5) {
                        last_line = Instant::now();
                        eprintln!("progress: {}/{} messages, {summary}", totals.copied, totals.to_copy);
                    }
                }
                _ => {}
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if mode == Mode::Plain || mode == Mode::Bar {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "copied {} messages ({}) in {:.1}s; {} skipped, {} failed",
                totals.copied,
                human_bytes(totals.bytes),
                secs,
                totals.skipped,
                totals.failed
            );
        }
    })
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
