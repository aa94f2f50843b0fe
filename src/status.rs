//! `cutover status`: what the checkpoint says about every user, as a table
//! for people or one JSON document for tools: per user its figures, what
//! its last sync did and (JSON) every sync; the syncs summed per pass; and,
//! while a `migrate --every` loop runs on a state DB, when its next pass
//! comes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{
    Checkpoint, CheckpointError, PimCounts, ProblemItem, Schedule, SyncCounts, UserStatus, format_time,
};
use crate::model::ItemKind;
use crate::progress::{every_words, human_bytes, wait_words};
use crate::report::{SyncPass, SyncReport, sync_passes};
use crate::wait::WaitOn;

#[derive(Serialize)]
pub struct StatusReport {
    pub users: Vec<UserEntry>,
    pub totals: Totals,
    /// Every user's first syncs summed (pass 1), their second ones, and so
    /// on: what each pass over the mailboxes did.
    pub passes: Vec<SyncPass>,
    /// The state DBs this view was made from (one per shard).
    pub state_dbs: Vec<String>,
    /// The `migrate --every` loops running on these state DBs; absent when
    /// none runs (a loop that died without cleaning up is not shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleEntry>,
    /// Problems with the merge (an unreadable DB, a user found in two
    /// shards' DBs); empty when all is well.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct UserEntry {
    #[serde(flatten)]
    pub status: UserStatus,
    /// What the last finished sync did: copied, bytes, moved,
    /// flags_updated, renamed, deleted_kept, deleted_mirrored.
    pub last_sync_counts: Option<SyncCounts>,
    /// Every sync, oldest first, with what it did.
    pub syncs: Vec<SyncReport>,
    /// Every skipped, failed or converted message, with its reason.
    pub items: Vec<ProblemItem>,
    /// The state DB this user's figures come from.
    pub state_db: String,
    /// Contacts and events (`[contacts_calendars]`); absent when none were
    /// ever copied for this user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<PimFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PimFigures>,
}

/// A user's contacts or events as the state DB has them.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PimFigures {
    /// In the target as the source last had them.
    pub written: u64,
    pub failed: u64,
    /// Deleted on the source, copy kept in the target.
    pub deleted_on_source_kept: u64,
    /// Deleted on the source and in the target (mirrored).
    pub deleted: u64,
    /// Written with notes on what the target could not hold.
    pub with_notes: u64,
}

impl PimFigures {
    fn of(c: PimCounts) -> Option<PimFigures> {
        let f = PimFigures {
            written: c.written,
            failed: c.failed,
            deleted_on_source_kept: c.gone_kept,
            deleted: c.deleted,
            with_notes: c.with_notes,
        };
        (f != PimFigures::default()).then_some(f)
    }

    fn words(&self) -> String {
        format!(
            "{} written ({} with notes), {} failed, {} deleted on source and kept, {} deleted",
            self.written, self.with_notes, self.failed, self.deleted_on_source_kept, self.deleted
        )
    }
}

/// A `migrate --every` loop as `status` shows it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ScheduleEntry {
    pub state_db: String,
    pub every_seconds: u64,
    /// The pass running, or the last one finished while waiting.
    pub pass: u64,
    /// A pass runs now (`next_pass_at` is then absent).
    pub running: bool,
    pub pass_started_at: Option<String>,
    pub next_pass_at: Option<String>,
    /// Seconds from this report to the next pass (0: due now).
    pub next_pass_in_seconds: Option<u64>,
}

impl ScheduleEntry {
    /// The row of one state DB, if the loop that wrote it still runs.
    fn of(row: Schedule, state_db: &Path, now: i64) -> Option<ScheduleEntry> {
        row.is_current(now).then(|| ScheduleEntry {
            state_db: state_db.display().to_string(),
            every_seconds: row.every_seconds.max(0) as u64,
            pass: row.pass.max(0) as u64,
            running: row.running(),
            pass_started_at: row.pass_started_at.map(format_time),
            next_pass_at: row.next_pass_at.map(format_time),
            next_pass_in_seconds: row.next_pass_at.map(|at| (at - now).max(0) as u64),
        })
    }

    /// "syncing every 30m; pass 4 running since …" or "…; next pass at …".
    fn words(&self) -> String {
        let every = every_words(self.every_seconds);
        match (&self.next_pass_at, self.next_pass_in_seconds) {
            (Some(at), Some(secs)) => format!(
                "syncing every {every}; pass {} finished; next pass at {at} (in {})",
                self.pass,
                wait_words(secs)
            ),
            _ => format!(
                "syncing every {every}; pass {} running since {}",
                self.pass,
                self.pass_started_at.as_deref().unwrap_or("now")
            ),
        }
    }
}

#[derive(Serialize, Default)]
pub struct Totals {
    pub users: u64,
    pub done: u64,
    pub source_messages: u64,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub deleted_on_source: u64,
    pub bytes_copied: u64,
    pub throttled: u64,
}

/// The view of one state DB.
pub fn collect(state_path: &Path) -> Result<StatusReport, CheckpointError> {
    collect_many(&[state_path.to_path_buf()])
}

/// One view over several state DBs (the shards of one migration), users
/// sorted by address. A DB that cannot be read is named in `warnings` and
/// the others are still shown; it is an error only if none can be read.
/// A user found in more than one DB (the shard count was changed) is shown
/// once, from the DB it was synced in last, with a warning.
pub fn collect_many(state_paths: &[PathBuf]) -> Result<StatusReport, CheckpointError> {
    let mut by_email: BTreeMap<String, UserEntry> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut schedules = Vec::new();
    let mut read = 0;
    for path in state_paths {
        let entries = match read_one(path) {
            Ok((e, schedule)) => {
                schedules.extend(schedule);
                e
            }
            Err(e) => {
                warnings.push(e.0);
                continue;
            }
        };
        read += 1;
        for entry in entries {
            let key = entry.status.email.to_lowercase();
            match by_email.get(&key) {
                Some(existing) => {
                    warnings.push(format!(
                        "{} is in both {} and {}; showing the one synced last. Keep the same --shard N for the whole migration.",
                        entry.status.email, existing.state_db, entry.state_db
                    ));
                    if entry.status.last_sync > existing.status.last_sync {
                        by_email.insert(key, entry);
                    }
                }
                None => {
                    by_email.insert(key, entry);
                }
            }
        }
    }
    if read == 0 {
        return Err(CheckpointError(warnings.join("; ")));
    }
    let mut totals = Totals::default();
    let users: Vec<UserEntry> = by_email.into_values().collect();
    for u in &users {
        let status = &u.status;
        totals.users += 1;
        totals.done += u64::from(status.state == "done");
        totals.source_messages += status.source_messages;
        totals.copied += status.copied;
        totals.skipped += status.skipped;
        totals.failed += status.failed;
        totals.deleted_on_source += status.deleted_on_source;
        totals.bytes_copied += status.bytes_copied;
        totals.throttled += status.throttled;
    }
    Ok(StatusReport {
        passes: sync_passes(users.iter().map(|u| u.syncs.as_slice())),
        users,
        totals,
        state_dbs: state_paths.iter().map(|p| p.display().to_string()).collect(),
        schedules,
        warnings,
    })
}

/// One state DB's users, and its `--every` loop if one runs.
fn read_one(path: &Path) -> Result<(Vec<UserEntry>, Option<ScheduleEntry>), CheckpointError> {
    let cp = Checkpoint::open_existing(path)?;
    let now = chrono::Utc::now().timestamp();
    let schedule = cp.schedule()?.and_then(|row| ScheduleEntry::of(row, path, now));
    let mut out = Vec::new();
    for email in cp.user_emails()? {
        let status = cp.user_status(&email)?;
        let items = cp.problem_items(&email)?;
        let syncs: Vec<SyncReport> = cp.syncs(&email)?.iter().map(SyncReport::new).collect();
        out.push(UserEntry {
            status,
            last_sync_counts: syncs.iter().rev().find(|s| s.finished.is_some()).map(|s| s.counts),
            syncs,
            items,
            state_db: path.display().to_string(),
            contacts: PimFigures::of(cp.pim_counts(&email, ItemKind::Contact)?),
            events: PimFigures::of(cp.pim_counts(&email, ItemKind::Event)?),
        });
    }
    Ok((out, schedule))
}

pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for s in &report.schedules {
        match report.state_dbs.len() {
            1 => out.push_str(&format!("{}\n", s.words())),
            _ => out.push_str(&format!("{} ({})\n", s.words(), s.state_db)),
        }
    }
    // While a run goes: what each mailbox waits on, in a column of its own
    // (left out when none waits).
    let waits = report.users.iter().any(|u| u.status.waiting_on.is_some());
    let mut header = vec![
        "USER",
        "STATE",
        "FOLDERS",
        "COPIED/SOURCE",
        "SKIPPED",
        "FAILED",
        "DELETED ON SOURCE",
        "SIZE",
        "THROTTLED",
        "LAST SYNC",
        "LAST SYNC DID",
        "LAST ERROR",
    ];
    if waits {
        header.insert(2, "WAITING ON");
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for u in &report.users {
        let s = &u.status;
        let skipped = if s.skipped_by_reason.is_empty() {
            "0".to_owned()
        } else {
            let reasons: Vec<String> = s.skipped_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
            format!("{} ({})", s.skipped, reasons.join(", "))
        };
        let mut row = vec![
            s.email.clone(),
            s.state.clone(),
            s.folders.to_string(),
            format!("{}/{}", s.copied, s.source_messages),
            skipped,
            s.failed.to_string(),
            s.deleted_on_source.to_string(),
            human_bytes(s.bytes_copied),
            match &s.last_throttle {
                Some(when) if s.throttled > 0 => format!("{} (last {when})", s.throttled),
                _ => s.throttled.to_string(),
            },
            s.last_sync.clone().unwrap_or_else(|| "never".into()),
            u.last_sync_counts.as_ref().map(did).unwrap_or_default(),
            s.last_error.clone().unwrap_or_default(),
        ];
        if waits {
            row.insert(2, waiting_words(s));
        }
        rows.push(row);
    }
    let t = &report.totals;
    let mut total = vec![
        format!("TOTAL ({} users)", t.users),
        format!("{} done", t.done),
        String::new(),
        format!("{}/{}", t.copied, t.source_messages),
        t.skipped.to_string(),
        t.failed.to_string(),
        t.deleted_on_source.to_string(),
        human_bytes(t.bytes_copied),
        t.throttled.to_string(),
        String::new(),
        String::new(),
        String::new(),
    ];
    if waits {
        let n = report.users.iter().filter(|u| u.status.waiting_on.is_some()).count();
        total.insert(2, format!("{n} waiting"));
    }
    rows.push(total);
    out.push_str(&crate::table::aligned(&header, &rows));
    if !report.passes.is_empty() {
        out.push_str("\nSync passes (pass N: every user's Nth sync; per-user history: --json or cutover report)\n");
        let header = [
            "PASS",
            "USERS",
            "DONE",
            "STARTED",
            "FINISHED",
            "COPIED",
            "MOVED",
            "FLAGS UPDATED",
            "RENAMED",
            "DELETED KEPT",
            "DELETED MIRRORED",
        ];
        let rows: Vec<Vec<String>> = report
            .passes
            .iter()
            .map(|p| {
                let c = &p.counts;
                vec![
                    p.pass.to_string(),
                    p.users.to_string(),
                    p.done.to_string(),
                    p.started.clone(),
                    p.finished.clone().unwrap_or_else(|| "not finished".into()),
                    format!("{} ({})", c.copied, human_bytes(c.bytes)),
                    c.moved.to_string(),
                    c.flags_updated.to_string(),
                    c.renamed.to_string(),
                    c.deleted_kept.to_string(),
                    c.deleted_mirrored.to_string(),
                ]
            })
            .collect();
        out.push_str(&crate::table::aligned(&header, &rows));
        if report.users.iter().any(|u| !u.items.is_empty()) {
            out.push('\n');
        }
    }
    // Contacts and calendars: one line per user who has any.
    let mut pim_lines = String::new();
    for u in &report.users {
        for (what, figures) in [("events", &u.events), ("contacts", &u.contacts)] {
            if let Some(f) = figures {
                pim_lines.push_str(&format!("{}: {what}: {}\n", u.status.email, f.words()));
            }
        }
    }
    if !pim_lines.is_empty() {
        out.push_str("\nContacts and calendars\n");
        out.push_str(&pim_lines);
    }
    for u in &report.users {
        for item in &u.items {
            out.push_str(&format!(
                "{}: {} {} UID {} ({}, {}): {}\n",
                item.email,
                item.state,
                item.folder,
                item.uid,
                item.internal_date,
                human_bytes(item.size),
                item.reason
            ));
        }
    }
    out
}

/// "target budget since 2026-…" while the mailbox waits, else empty.
fn waiting_words(s: &UserStatus) -> String {
    match (&s.waiting_on, &s.waiting_since) {
        (Some(on), Some(since)) => format!("{} since {since}", WaitOn::words_of(on)),
        (Some(on), None) => WaitOn::words_of(on),
        _ => String::new(),
    }
}

/// What a sync did, in a few words ("nothing" when nothing changed).
fn did(c: &SyncCounts) -> String {
    let parts: Vec<String> = [
        (c.copied, "copied"),
        (c.moved, "moved"),
        (c.flags_updated, "flags updated"),
        (c.renamed, "folders renamed"),
        (c.deleted_kept, "deleted on source (kept)"),
        (c.deleted_mirrored, "deleted on source (mirrored)"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each user shows what its last finished sync did, and `--json` every
    /// sync; the passes sum them.
    #[test]
    fn status_shows_the_last_sync_and_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let cp = Checkpoint::open(&path).unwrap();
        let first = cp.begin_sync("a@x.test").unwrap();
        let copied = SyncCounts {
            copied: 10,
            bytes: 1000,
            ..Default::default()
        };
        cp.finish_sync(first, "a@x.test", "done", &copied, None).unwrap();
        let second = cp.begin_sync("a@x.test").unwrap();
        let resync = SyncCounts {
            moved: 2,
            flags_updated: 3,
            renamed: 1,
            deleted_kept: 4,
            deleted_mirrored: 5,
            ..Default::default()
        };
        cp.finish_sync(second, "a@x.test", "done", &resync, None).unwrap();
        // A run under way: its sync counts nothing yet.
        cp.begin_sync("a@x.test").unwrap();
        let quiet = cp.begin_sync("b@x.test").unwrap();
        cp.finish_sync(quiet, "b@x.test", "done", &SyncCounts::default(), None)
            .unwrap();
        drop(cp);

        let report = collect(&path).unwrap();
        let a = &report.users[0];
        assert_eq!(a.last_sync_counts, Some(resync));
        assert_eq!(a.syncs.len(), 3);
        assert_eq!((a.syncs[0].counts, a.syncs[1].counts), (copied, resync));
        assert_eq!(report.passes.len(), 3);
        assert_eq!((report.passes[0].users, report.passes[0].counts.copied), (2, 10));
        assert_eq!((report.passes[1].users, report.passes[1].counts), (1, resync));

        let json = serde_json::to_value(&report).unwrap();
        let a = &json["users"][0];
        assert_eq!(a["last_sync_counts"]["moved"], 2);
        assert_eq!(a["syncs"][1]["deleted_kept"], 4);
        assert_eq!(a["syncs"][1]["deleted_mirrored"], 5);
        assert_eq!(json["passes"][1]["flags_updated"], 3);

        let text = render_table(&report);
        assert!(
            text.contains(
                "2 moved, 3 flags updated, 1 folders renamed, 4 deleted on source (kept), 5 deleted on source (mirrored)"
            ),
            "{text}"
        );
        let b = text.lines().find(|l| l.starts_with("b@x.test")).unwrap();
        assert!(b.contains("  nothing"), "{b}");
        assert!(text.contains("Sync passes"), "{text}");
        let pass2 = text.lines().find(|l| l.starts_with("2 ")).unwrap();
        let cells: Vec<&str> = pass2.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 5..], ["2", "3", "1", "4", "5"], "{pass2}");
    }

    /// What a mailbox waits on shows while the run that wrote it beats,
    /// and not once its heartbeat is stale (a killed run).
    #[test]
    fn status_shows_what_a_mailbox_waits_on_only_while_the_run_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let cp = Checkpoint::open(&path).unwrap();
        cp.begin_sync("a@x.test").unwrap();
        cp.begin_sync("b@x.test").unwrap();
        let quiet = collect(&path).unwrap();
        assert!(!render_table(&quiet).contains("WAITING ON"));

        let since = chrono::Utc::now().timestamp() - 42;
        cp.set_waiting("a@x.test", Some("target_budget"), Some(since)).unwrap();
        // Written but no heartbeat: not shown as going on.
        assert_eq!(collect(&path).unwrap().users[0].status.waiting_on, None);
        cp.waits_heartbeat().unwrap();
        let report = collect(&path).unwrap();
        let text = render_table(&report);
        assert!(text.contains("WAITING ON"), "{text}");
        let a = text.lines().find(|l| l.starts_with("a@x.test")).unwrap();
        assert!(
            a.contains(&format!("target budget since {}", format_time(since))),
            "{a}"
        );
        assert!(text.contains("1 waiting"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["users"][0]["waiting_on"], "target_budget");
        assert_eq!(json["users"][0]["waiting_since"], format_time(since));
        assert!(json["users"][1]["waiting_on"].is_null());

        // A heartbeat too old: the run is gone.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'waits_at'",
                [(chrono::Utc::now().timestamp() - crate::checkpoint::WAITS_STALE_AFTER - 1).to_string()],
            )
            .unwrap();
        assert_eq!(collect(&path).unwrap().users[0].status.waiting_on, None);
        // The run ended: cleared.
        cp.waits_heartbeat().unwrap();
        cp.clear_waiting().unwrap();
        assert!(!render_table(&collect(&path).unwrap()).contains("WAITING ON"));
    }

    /// A running loop's schedule shows above the table and in the JSON;
    /// none, or one its process left behind, shows nothing.
    #[test]
    fn status_shows_the_next_pass_of_a_running_loop_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let cp = Checkpoint::open(&path).unwrap();
        let id = cp.begin_sync("a@x.test").unwrap();
        cp.finish_sync(id, "a@x.test", "done", &SyncCounts::default(), None)
            .unwrap();
        let quiet = collect(&path).unwrap();
        assert!(quiet.schedules.is_empty());
        assert!(!render_table(&quiet).contains("syncing every"));
        assert!(serde_json::to_value(&quiet).unwrap().get("schedules").is_none());

        let now = chrono::Utc::now().timestamp();
        cp.schedule_pass_started(1800, 4, now - 60).unwrap();
        let running = collect(&path).unwrap();
        let text = render_table(&running);
        assert!(
            text.starts_with(&format!(
                "syncing every 30m; pass 4 running since {}\n",
                format_time(now - 60)
            )),
            "{text}"
        );
        cp.schedule_next_pass(now + 1752).unwrap();
        let waiting = collect(&path).unwrap();
        let text = render_table(&waiting);
        let line = text.lines().next().unwrap();
        assert!(
            line.starts_with(&format!(
                "syncing every 30m; pass 4 finished; next pass at {} (in 29m ",
                format_time(now + 1752)
            )),
            "{line}"
        );
        let json = serde_json::to_value(&waiting).unwrap();
        assert_eq!(json["schedules"][0]["every_seconds"], 1800);
        assert_eq!(json["schedules"][0]["running"], false);
        assert_eq!(json["schedules"][0]["next_pass_at"], format_time(now + 1752));

        // Left by a process that died: not rewritten for too long.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE schedule SET updated_at = ?1",
                [now - crate::checkpoint::SCHEDULE_STALE_AFTER - 1],
            )
            .unwrap();
        assert!(collect(&path).unwrap().schedules.is_empty());
    }
}
