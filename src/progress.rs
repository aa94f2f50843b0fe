//! Shows a run as it happens, from events only: on a terminal an overall
//! bar plus one line per active mailbox, a few plain lines every few
//! seconds otherwise, or one JSON object per event on stdout for other tools
//! to follow.
//!
//! What is shown is computed by [`Board`], a plain state machine fed with
//! events, so the wording can be tested without a terminal. Log lines reach
//! the terminal through [`LogWriter`], which prints them above the bars
//! instead of through them.
//!
//! Contacts and events arrive counted per mailbox in `user_finished` (they
//! are copied after its mail); they are shown on its closing line and in
//! the run's totals only when the run copies them, so a mail-only run
//! reads as it always did.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::event::{Event, PimFinished};
use crate::wait::WaitOn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redrawn bars on stderr (a terminal).
    Bar,
    /// Lines on stderr every few seconds (logs, CI, cron).
    Plain,
    /// JSON lines on stdout.
    Json,
    Quiet,
}

/// How often the plain mode prints where the run is.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the bars are refreshed when no event arrives (rates, waits).
const BAR_TICK: Duration = Duration::from_millis(500);

/// The bars while they are on screen, so log lines can be printed above
/// them. `None` when no bar is drawn.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// A `tracing` writer for stderr that keeps the progress bars intact: while
/// bars are drawn, each log line is printed above them.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bars = BARS.lock().ok().and_then(|b| b.clone());
        match bars {
            Some(bars) => bars.suspend(|| std::io::stderr().lock().write_all(buf))?,
            None => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// One mailbox being copied.
#[derive(Debug)]
struct Active {
    started: Instant,
    folder: Option<String>,
    to_copy: u64,
    copied: u64,
    bytes: u64,
    /// Since when the mailbox waits because a server pushed back, and why.
    throttled: Option<(Instant, String)>,
}

/// Everything the display knows about the run, built from events alone.
#[derive(Debug)]
pub struct Board {
    started: Instant,
    users: usize,
    users_finished: usize,
    users_failed: usize,
    to_copy: u64,
    to_copy_bytes: u64,
    copied: u64,
    bytes: u64,
    skipped: u64,
    failed: u64,
    /// Contacts and events over the finished mailboxes; `None` until one
    /// finished with them (`[contacts_calendars]`).
    pim: Option<PimFinished>,
    active: BTreeMap<String, Active>,
    /// What each waiting mailbox waits on (a `WaitOn` name), from
    /// `waiting` events.
    waiting: BTreeMap<String, String>,
    /// `migrate --every`: "pass N finished in …", said together with
    /// what comes next (the next pass, or the stop).
    finished_pass: Option<String>,
}

impl Board {
    pub fn new(now: Instant) -> Self {
        Board {
            started: now,
            users: 0,
            users_finished: 0,
            users_failed: 0,
            to_copy: 0,
            to_copy_bytes: 0,
            copied: 0,
            bytes: 0,
            skipped: 0,
            failed: 0,
            pim: None,
            active: BTreeMap::new(),
            waiting: BTreeMap::new(),
            finished_pass: None,
        }
    }

    /// Takes one event in; returns a line worth printing on its own (a
    /// failure, a finished mailbox, a wait), if any.
    pub fn apply(&mut self, event: &Event, now: Instant) -> Option<String> {
        match event {
            Event::RunStarted { users, .. } => {
                self.users = *users;
                None
            }
            Event::UserStarted { user } => {
                self.active.insert(
                    user.clone(),
                    Active {
                        started: now,
                        folder: None,
                        to_copy: 0,
                        copied: 0,
                        bytes: 0,
                        throttled: None,
                    },
                );
                None
            }
            Event::FolderScanned { user, folder, .. } => {
                if let Some(a) = self.active.get_mut(user) {
                    a.folder = Some(format!("scanning {folder}"));
                }
                None
            }
            Event::Planned {
                user, to_copy, bytes, ..
            } => {
                self.to_copy += *to_copy as u64;
                self.to_copy_bytes += bytes;
                if let Some(a) = self.active.get_mut(user) {
                    a.to_copy = *to_copy as u64;
                    a.folder = None;
                }
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
            Event::BatchCopied {
                user,
                folder,
                messages,
                bytes,
            } => {
                self.copied += messages;
                self.bytes += bytes;
                if let Some(a) = self.active.get_mut(user) {
                    a.copied += messages;
                    a.bytes += bytes;
                    a.folder = Some(folder.clone());
                    a.throttled = None;
                }
                None
            }
            Event::ItemSkipped { .. } => {
                self.skipped += 1;
                None
            }
            Event::ItemFailed {
                user,
                folder,
                uid,
                reason,
            } => {
                self.failed += 1;
                Some(format!("{user}: {folder} UID {uid} failed: {reason}"))
            }
            Event::Throttled { user, delay_ms, reason } => {
                if let Some(a) = self.active.get_mut(user) {
                    // Keep the first moment of a run of waits: "since" is what
                    // tells the admin a mailbox is stuck.
                    let since = a.throttled.as_ref().map_or(now, |(t, _)| *t);
                    a.throttled = Some((since, reason.clone()));
                }
                Some(format!(
                    "{user}: server pushed back, waiting {:.1}s ({reason})",
                    *delay_ms as f64 / 1000.0
                ))
            }
            Event::Waiting { user, on, .. } => {
                match on {
                    Some(on) => self.waiting.insert(user.clone(), on.clone()),
                    None => self.waiting.remove(user),
                };
                None
            }
            Event::UserFinished {
                user,
                state,
                copied,
                failed,
                flags_updated,
                moved,
                renamed,
                deleted_kept,
                deleted,
                pim,
                error,
                ..
            } => {
                self.users_finished += 1;
                self.waiting.remove(user);
                let pim_failed = pim.as_ref().is_some_and(|p| p.contacts_failed + p.events_failed > 0);
                if error.is_some() || *failed > 0 || pim_failed {
                    self.users_failed += 1;
                }
                if let Some(p) = pim {
                    add_pim(self.pim.get_or_insert_with(PimFinished::default), p);
                }
                let elapsed = self
                    .active
                    .remove(user)
                    .map(|a| now.saturating_duration_since(a.started));
                let took = elapsed
                    .map(|d| format!(" in {}", human_duration(d)))
                    .unwrap_or_default();
                let mut flags = String::new();
                if *moved > 0 {
                    flags.push_str(&format!(", {moved} moved"));
                }
                if *renamed > 0 {
                    flags.push_str(&format!(", {renamed} folders renamed"));
                }
                if *flags_updated > 0 {
                    flags.push_str(&format!(", {flags_updated} flag changes written"));
                }
                if *deleted_kept > 0 {
                    flags.push_str(&format!(", {deleted_kept} deleted on the source and kept"));
                }
                if *deleted > 0 {
                    flags.push_str(&format!(", {deleted} deleted as on the source"));
                }
                let pim = pim.as_ref().map(|p| format!("; {}", pim_words(p))).unwrap_or_default();
                Some(match error {
                    Some(e) => format!("{user}: {state} ({copied} copied, {failed} failed{flags}{took}{pim}): {e}"),
                    None => format!("{user}: {state} ({copied} copied, {failed} failed{flags}{took}{pim})"),
                })
            }
            Event::RunFinished { .. } => None,
            Event::PassStarted {
                pass, every_seconds, ..
            } => Some(format!(
                "pass {pass} started (syncing every {})",
                every_words(*every_seconds)
            )),
            Event::PassFinished {
                pass,
                outcome,
                started_at,
                finished_at,
            } => {
                self.finished_pass = Some(format!(
                    "pass {pass} finished in {}: {outcome}",
                    wait_words((finished_at - started_at).max(0) as u64)
                ));
                None
            }
            Event::NextPass { at, in_seconds, .. } => {
                let next = format!("next pass at {} (in {})", local_clock(*at), wait_words(*in_seconds));
                Some(match self.finished_pass.take() {
                    Some(finished) => format!("{finished}; {next}"),
                    None => next,
                })
            }
            Event::PassesStopped { passes, while_waiting } => Some(match self.finished_pass.take() {
                Some(finished) => format!("{finished}; stopped, no further pass"),
                None if *while_waiting => format!("stopped while waiting for pass {}; no further pass", passes + 1),
                None => "stopped; no further pass".to_owned(),
            }),
        }
    }

    /// Messages per second over the whole run so far.
    fn rate(&self, now: Instant) -> f64 {
        self.copied as f64 / now.saturating_duration_since(self.started).as_secs_f64().max(0.001)
    }

    /// Time left at the current rate, when there is a rate to go by.
    fn eta(&self, now: Instant) -> Option<Duration> {
        let rate = self.rate(now);
        let left = self.to_copy.saturating_sub(self.copied);
        (rate > 0.0 && self.copied > 0).then(|| Duration::from_secs_f64(left as f64 / rate))
    }

    /// The run as a whole, on one line.
    pub fn overall_line(&self, now: Instant) -> String {
        let eta = match self.eta(now) {
            Some(d) => human_duration(d),
            None => "-".to_owned(),
        };
        let pim = self
            .pim
            .as_ref()
            .map(|p| format!("  contacts {}  events {}", p.contacts_written, p.events_written))
            .unwrap_or_default();
        let waiting = self.waiting_words().map(|w| format!("  {w}")).unwrap_or_default();
        format!(
            "mailboxes {}/{} ({} active)  messages {}/{}  {}/{}  {:.0} msg/s{pim}  skipped {}  failed {}  ETA {eta}{waiting}",
            self.users_finished,
            self.users,
            self.active.len(),
            self.copied,
            self.to_copy,
            human_bytes(self.bytes),
            human_bytes(self.to_copy_bytes),
            self.rate(now),
            self.skipped,
            self.failed,
        )
    }

    /// "waiting: 8 on target budget, 4 on source slot" (the binding limit
    /// first), or `None` when no mailbox waits.
    pub fn waiting_words(&self) -> Option<String> {
        if self.waiting.is_empty() {
            return None;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for on in self.waiting.values() {
            *counts.entry(on.as_str()).or_default() += 1;
        }
        let mut parts = Vec::new();
        for on in WaitOn::BY_PRIORITY {
            if let Some(n) = counts.remove(on.as_str()) {
                parts.push(format!("{n} on {}", on.words()));
            }
        }
        parts.extend(counts.iter().map(|(on, n)| format!("{n} on {}", WaitOn::words_of(on))));
        Some(format!("waiting: {}", parts.join(", ")))
    }

    /// One line per mailbox being copied, in a stable order.
    pub fn mailbox_lines(&self, now: Instant) -> Vec<(String, String)> {
        self.active
            .iter()
            .map(|(user, a)| {
                let secs = now.saturating_duration_since(a.started).as_secs_f64().max(0.001);
                let mut line = format!(
                    "{user}  {}  {}/{} msgs  {}  {:.0} msg/s",
                    a.folder.as_deref().unwrap_or("scanning"),
                    a.copied,
                    a.to_copy,
                    human_bytes(a.bytes),
                    a.copied as f64 / secs,
                );
                if let Some(on) = self.waiting.get(user) {
                    line.push_str(&format!("  waiting on {}", WaitOn::words_of(on)));
                }
                if let Some((since, reason)) = &a.throttled {
                    line.push_str(&format!(
                        "  throttled for {} ({reason})",
                        human_duration(now.saturating_duration_since(*since))
                    ));
                }
                (user.clone(), line)
            })
            .collect()
    }

    /// The closing line of a run.
    pub fn summary(&self, now: Instant) -> String {
        let pim = self
            .pim
            .as_ref()
            .map(|p| format!("; {}", pim_words(p)))
            .unwrap_or_default();
        format!(
            "copied {} messages ({}) in {}; {} skipped, {} failed{pim}; {} of {} mailboxes finished, {} with problems",
            self.copied,
            human_bytes(self.bytes),
            human_duration(now.saturating_duration_since(self.started)),
            self.skipped,
            self.failed,
            self.users_finished,
            self.users,
            self.users_failed,
        )
    }
}

/// "contacts 2 written, 0 failed, 1 kept; events 3 written, 0 failed, 0 kept"
/// (kept: deleted on the source, the copy left in the target).
fn pim_words(p: &PimFinished) -> String {
    format!(
        "contacts {} written, {} failed, {} kept; events {} written, {} failed, {} kept",
        p.contacts_written, p.contacts_failed, p.contacts_kept, p.events_written, p.events_failed, p.events_kept
    )
}

fn add_pim(total: &mut PimFinished, p: &PimFinished) {
    total.contacts_written += p.contacts_written;
    total.contacts_failed += p.contacts_failed;
    total.contacts_kept += p.contacts_kept;
    total.events_written += p.events_written;
    total.events_failed += p.events_failed;
    total.events_kept += p.events_kept;
}

/// The bars on screen: the overall one and one per active mailbox.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    mailboxes: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%\n  {msg}")
                .expect("valid template"),
        );
        if let Ok(mut slot) = BARS.lock() {
            *slot = Some(multi.clone());
        }
        Bars {
            multi,
            overall,
            mailboxes: BTreeMap::new(),
        }
    }

    fn draw(&mut self, board: &Board, now: Instant) {
        self.overall.set_length(board.to_copy.max(1));
        self.overall.set_position(board.copied);
        self.overall.set_message(board.overall_line(now));
        self.overall.tick();
        let lines = board.mailbox_lines(now);
        self.mailboxes.retain(|user, bar| {
            let keep = lines.iter().any(|(u, _)| u == user);
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        for (user, line) in lines {
            let bar = self.mailboxes.entry(user).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(ProgressStyle::with_template("  {spinner} {msg}").expect("valid template"));
                bar
            });
            bar.set_message(line);
            bar.tick();
        }
    }

    fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    fn finish(self) {
        for bar in self.mailboxes.values() {
            bar.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
        if let Ok(mut slot) = BARS.lock() {
            *slot = None;
        }
    }
}

pub fn spawn(mode: Mode, mut rx: UnboundedReceiver<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut board = Board::new(Instant::now());
        let mut bars = (mode == Mode::Bar).then(Bars::new);
        // `migrate --every`: each pass is shown as a run of its own, closed
        // by its summary; nothing is redrawn while the next one is waited for.
        let mut summarized = false;
        let every = if mode == Mode::Bar { BAR_TICK } else { PLAIN_EVERY };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(e) => Some(e),
                    None => break,
                },
                _ = tick.tick() => None,
            };
            let now = Instant::now();
            let Some(event) = event else {
                match (&mut bars, mode) {
                    (Some(bars), _) => bars.draw(&board, now),
                    (None, Mode::Plain) if board.users > 0 && !summarized => print_plain(&board, now),
                    _ => {}
                }
                continue;
            };
            if mode == Mode::Json {
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut out, &event);
                let _ = out.write_all(b"\n");
                continue;
            }
            match &event {
                Event::PassStarted { .. } => {
                    board = Board::new(now);
                    summarized = false;
                    if mode == Mode::Bar && bars.is_none() {
                        bars = Some(Bars::new());
                    }
                }
                Event::PassFinished { .. } => {
                    if let Some(b) = bars.take() {
                        b.finish();
                    }
                    if mode == Mode::Plain || mode == Mode::Bar {
                        eprintln!("{}", board.summary(now));
                    }
                    summarized = true;
                }
                _ => {}
            }
            let note = board.apply(&event, now);
            match (&mut bars, mode) {
                (Some(bars), _) => {
                    if let Some(n) = note {
                        bars.println(&n);
                    }
                    bars.draw(&board, now);
                }
                (None, Mode::Plain | Mode::Bar) => {
                    if let Some(n) = note {
                        eprintln!("{n}");
                    }
                }
                _ => {}
            }
        }
        if let Some(bars) = bars {
            bars.finish();
        }
        if (mode == Mode::Plain || mode == Mode::Bar) && !summarized {
            eprintln!("{}", board.summary(Instant::now()));
        }
    })
}

/// The plain mode's periodic report: the run, then each active mailbox.
fn print_plain(board: &Board, now: Instant) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "progress: {}", board.overall_line(now));
    for (_, line) in board.mailbox_lines(now) {
        let _ = writeln!(err, "  {line}");
    }
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

/// "45s", "12m 05s", "3h 20m": precise enough for a progress line.
/// An interval as `--every` takes it: "30m", "2h", "1h30m", "45s".
pub fn every_words(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

/// A wait in whole seconds: "12s", "29m 12s", "2h 05m 00s".
pub fn wait_words(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A Unix time as this machine's clock shows it (HH:MM:SS, local time,
/// as cron and `date` use).
pub fn local_clock(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&chrono::Local)
        .format("%H:%M:%S")
        .to_string()
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    fn copied(user: &str, folder: &str, messages: u64, bytes: u64) -> Event {
        Event::BatchCopied {
            user: user.into(),
            folder: folder.into(),
            messages,
            bytes,
        }
    }

    #[test]
    fn each_active_mailbox_has_its_own_line_with_folder_counts_and_rate() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        board.apply(
            &Event::RunStarted {
                users: 3,
                target: "imap".into(),
            },
            t0,
        );
        for user in ["a@x", "b@x"] {
            board.apply(&Event::UserStarted { user: user.into() }, t0);
            board.apply(
                &Event::Planned {
                    user: user.into(),
                    to_copy: 100,
                    bytes: 1 << 20,
                    skipped: 0,
                    already_copied: 0,
                },
                t0,
            );
        }
        board.apply(&copied("a@x", "Archive/2024", 40, 400 << 10), at(t0, 2));
        board.apply(&copied("b@x", "INBOX", 10, 100 << 10), at(t0, 2));

        let lines = board.mailbox_lines(at(t0, 10));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, "a@x");
        assert_eq!(lines[0].1, "a@x  Archive/2024  40/100 msgs  400.0 KiB  4 msg/s");
        assert_eq!(lines[1].1, "b@x  INBOX  10/100 msgs  100.0 KiB  1 msg/s");

        let overall = board.overall_line(at(t0, 10));
        assert!(
            overall.starts_with("mailboxes 0/3 (2 active)  messages 50/200"),
            "{overall}"
        );
        assert!(overall.contains("5 msg/s"), "{overall}");
        // 150 messages left at 5 msg/s.
        assert!(overall.ends_with("ETA 30.0s"), "{overall}");
    }

    #[test]
    fn a_throttled_mailbox_shows_since_when_until_it_copies_again() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        board.apply(&Event::UserStarted { user: "a@x".into() }, t0);
        let throttled = Event::Throttled {
            user: "a@x".into(),
            delay_ms: 2500,
            reason: "429 Too Many Requests".into(),
        };
        let note = board.apply(&throttled, at(t0, 5)).expect("a wait is worth a line");
        assert!(note.contains("waiting 2.5s"), "{note}");
        board.apply(&throttled, at(t0, 8));
        let line = &board.mailbox_lines(at(t0, 70))[0].1;
        assert!(line.ends_with("throttled for 1m 05s (429 Too Many Requests)"), "{line}");

        board.apply(&copied("a@x", "INBOX", 1, 10), at(t0, 71));
        assert!(!board.mailbox_lines(at(t0, 72))[0].1.contains("throttled"));
    }

    #[test]
    fn the_overall_line_counts_the_waiting_mailboxes_by_what_binds_them() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        let waiting = |user: &str, on: Option<&str>| Event::Waiting {
            user: user.into(),
            on: on.map(str::to_owned),
            since: 1_700_000_000,
            until: None,
        };
        for user in ["a@x", "b@x", "c@x", "d@x"] {
            board.apply(&Event::UserStarted { user: user.into() }, t0);
        }
        assert!(!board.overall_line(t0).contains("waiting"));
        board.apply(&waiting("a@x", Some("source_slot")), t0);
        board.apply(&waiting("b@x", Some("target_budget")), t0);
        board.apply(&waiting("c@x", Some("target_budget")), t0);
        board.apply(&waiting("d@x", Some("login_rate")), t0);
        let overall = board.overall_line(t0);
        assert!(
            overall.ends_with("  waiting: 2 on target budget, 1 on source slot, 1 on login rate"),
            "{overall}"
        );
        assert!(board.mailbox_lines(t0)[0].1.ends_with("  waiting on source slot"));
        board.apply(&waiting("b@x", None), t0);
        board.apply(&waiting("d@x", Some("throttled")), t0);
        let overall = board.overall_line(t0);
        assert!(
            overall.ends_with("  waiting: 1 on server push-back, 1 on target budget, 1 on source slot"),
            "{overall}"
        );
        board.apply(&finished_with("a@x", None), t0);
        board.apply(&waiting("c@x", None), t0);
        board.apply(&waiting("d@x", None), t0);
        assert!(
            !board.overall_line(t0).contains("waiting"),
            "a finished mailbox waits on nothing"
        );
    }

    #[test]
    fn finished_mailboxes_leave_the_display_with_a_closing_line() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        board.apply(
            &Event::RunStarted {
                users: 1,
                target: "imap".into(),
            },
            t0,
        );
        board.apply(&Event::UserStarted { user: "a@x".into() }, t0);
        board.apply(&copied("a@x", "INBOX", 3, 300), at(t0, 1));
        let note = board
            .apply(
                &Event::UserFinished {
                    user: "a@x".into(),
                    state: "partial".into(),
                    copied: 3,
                    bytes: 300,
                    failed: 1,
                    flags_updated: 0,
                    moved: 0,
                    renamed: 0,
                    deleted_kept: 0,
                    deleted: 0,
                    pim: None,
                    error: Some("target refused a message".into()),
                },
                at(t0, 90),
            )
            .unwrap();
        assert_eq!(
            note,
            "a@x: partial (3 copied, 1 failed in 1m 30s): target refused a message"
        );
        assert!(board.mailbox_lines(at(t0, 91)).is_empty());
        assert_eq!(
            board.summary(at(t0, 91)),
            "copied 3 messages (300 B) in 1m 31s; 0 skipped, 0 failed; 1 of 1 mailboxes finished, 1 with problems"
        );
    }

    #[test]
    fn a_closing_line_counts_what_a_resync_changed() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        board.apply(&Event::UserStarted { user: "a@x".into() }, t0);
        let note = board
            .apply(
                &Event::UserFinished {
                    user: "a@x".into(),
                    state: "done".into(),
                    copied: 1,
                    bytes: 100,
                    failed: 0,
                    flags_updated: 4,
                    moved: 2,
                    renamed: 3,
                    deleted_kept: 5,
                    deleted: 6,
                    pim: None,
                    error: None,
                },
                at(t0, 2),
            )
            .unwrap();
        assert_eq!(
            note,
            "a@x: done (1 copied, 0 failed, 2 moved, 3 folders renamed, 4 flag changes written, \
             5 deleted on the source and kept, 6 deleted as on the source in 2.0s)"
        );
    }

    fn finished_with(user: &str, pim: Option<PimFinished>) -> Event {
        Event::UserFinished {
            user: user.into(),
            state: "done".into(),
            copied: 0,
            bytes: 0,
            failed: 0,
            flags_updated: 0,
            moved: 0,
            renamed: 0,
            deleted_kept: 0,
            deleted: 0,
            pim,
            error: None,
        }
    }

    #[test]
    fn contacts_and_events_show_per_mailbox_and_in_the_totals_when_copied() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        board.apply(
            &Event::RunStarted {
                users: 2,
                target: "graph".into(),
            },
            t0,
        );
        for user in ["a@x", "b@x"] {
            board.apply(&Event::UserStarted { user: user.into() }, t0);
        }
        let a = PimFinished {
            contacts_written: 2,
            contacts_failed: 0,
            contacts_kept: 1,
            events_written: 3,
            events_failed: 0,
            events_kept: 0,
        };
        let note = board.apply(&finished_with("a@x", Some(a)), at(t0, 2)).unwrap();
        assert_eq!(
            note,
            "a@x: done (0 copied, 0 failed in 2.0s; contacts 2 written, 0 failed, 1 kept; events 3 written, 0 failed, 0 kept)"
        );
        let overall = board.overall_line(at(t0, 2));
        assert!(overall.contains("msg/s  contacts 2  events 3  skipped 0"), "{overall}");
        let b = PimFinished {
            contacts_written: 1,
            events_written: 4,
            events_failed: 1,
            ..Default::default()
        };
        board.apply(&finished_with("b@x", Some(b)), at(t0, 3));
        assert_eq!(
            board.summary(at(t0, 4)),
            "copied 0 messages (0 B) in 4.0s; 0 skipped, 0 failed; contacts 3 written, 0 failed, 1 kept; \
             events 7 written, 1 failed, 0 kept; 2 of 2 mailboxes finished, 1 with problems"
        );
    }

    #[test]
    fn a_mail_only_run_says_nothing_of_contacts_or_events() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        board.apply(&Event::UserStarted { user: "a@x".into() }, t0);
        let note = board.apply(&finished_with("a@x", None), at(t0, 1)).unwrap();
        assert_eq!(note, "a@x: done (0 copied, 0 failed in 1.0s)");
        assert!(!board.overall_line(at(t0, 1)).contains("contacts"));
        assert!(!board.summary(at(t0, 1)).contains("contacts"));
    }

    #[test]
    fn no_eta_before_anything_was_copied() {
        let t0 = Instant::now();
        let board = Board::new(t0);
        assert!(board.overall_line(at(t0, 3)).ends_with("ETA -"));
    }

    /// `migrate --every`: a pass's end is said with what comes next.
    #[test]
    fn a_finished_pass_says_when_the_next_one_starts() {
        let t0 = Instant::now();
        let mut board = Board::new(t0);
        let started = Event::PassStarted {
            pass: 4,
            every_seconds: 1800,
            started_at: 1_000,
        };
        assert_eq!(
            board.apply(&started, t0).as_deref(),
            Some("pass 4 started (syncing every 30m)")
        );
        let finished = Event::PassFinished {
            pass: 4,
            outcome: "done".into(),
            started_at: 1_000,
            finished_at: 1_048,
        };
        assert_eq!(board.apply(&finished, t0), None, "said with the next pass");
        let next = Event::NextPass {
            pass: 5,
            at: 2_800,
            in_seconds: 1752,
        };
        let line = board.apply(&next, t0).unwrap();
        let clock = local_clock(2_800);
        assert_eq!(
            line,
            format!("pass 4 finished in 48s: done; next pass at {clock} (in 29m 12s)")
        );
        let stopped = Event::PassesStopped {
            passes: 4,
            while_waiting: true,
        };
        assert_eq!(
            board.apply(&stopped, t0).as_deref(),
            Some("stopped while waiting for pass 5; no further pass")
        );
        board.apply(&finished, t0);
        let cut = Event::PassesStopped {
            passes: 4,
            while_waiting: false,
        };
        assert_eq!(
            board.apply(&cut, t0).as_deref(),
            Some("pass 4 finished in 48s: done; stopped, no further pass")
        );
    }

    #[test]
    fn intervals_and_waits_in_words() {
        assert_eq!(every_words(1800), "30m");
        assert_eq!(every_words(5400), "1h30m");
        assert_eq!(every_words(90), "1m30s");
        assert_eq!(every_words(2), "2s");
        assert_eq!(wait_words(1752), "29m 12s");
        assert_eq!(wait_words(7), "7s");
        assert_eq!(wait_words(7505), "2h 05m 05s");
    }
}
