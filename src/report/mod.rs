//! `cutover report`: what an admin hands on after (or during) a migration,
//! from the checkpoint alone: per user the state, what the source holds,
//! what was copied, skipped (and why) and failed (and with what error), the
//! bytes, every sync with its start, end, duration, rate and what it changed
//! (copied, moved, flags updated, folders renamed, deletions on the source
//! kept or mirrored), those totalled per pass, and every skipped, failed or
//! converted message. Contacts and calendar events (`[contacts_calendars]`)
//! are reported beside the mail of the users that have any: per user what
//! was written, failed, deleted on the source (kept or mirrored) and
//! written with notes, totalled, and every contact or event that failed
//! (with the reason, so the admin can fix the .vcf or .ics item) or was
//! written with notes on what the target could not hold. A migration
//! without contacts or calendars gets exactly the report it always had.
//! Three renderings of the same [`Report`]:
//!
//! - CSV for spreadsheets: `<output>` holds one row per user,
//!   `<stem>.syncs.csv` one row per sync and `<stem>.items.csv` one row per
//!   skipped, failed or converted message, and when there are contacts or
//!   events, `<stem>.contacts_events.csv` one row per contact or event that
//!   failed or was written with notes (UTF-8 with a BOM so Excel reads accents,
//!   times in UTC as `YYYY-MM-DD HH:MM:SS` so Excel reads them as dates,
//!   cells that would start a formula prefixed with `'`).
//! - JSON: the whole [`Report`], for tools.
//! - HTML: one self-contained page (no network: inline CSS, a few lines of
//!   JS to sort the user table, inline SVG charts of throughput per sync and
//!   of skip reasons), safe to mail around.
//!
//! Every file is created mode 0600. The checkpoint holds no passwords, so
//! neither can a report; message subjects and folder names come from
//! senders and users and are escaped for each format.
//!
//! This module gathers the [`Report`] from the checkpoint and writes the
//! files; the renderings live in `csv`, `html` (with its SVG charts in
//! `charts`) and, being only serde on the model, JSON in [`write`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{
    Checkpoint, CheckpointError, PimCounts, PimState, ProblemItem, SyncCounts, SyncRecord, UserStatus, format_time,
};
use crate::model::ItemKind;

mod charts;
mod csv;
mod html;

pub use self::csv::{csv_companions, csv_pim_companion, render_csv, render_pim_csv};
pub use self::html::{HTML_ITEM_LIMIT, esc, escape_html, render_html};

/// How `cutover report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Html,
}

impl Format {
    /// The format an output file name implies (`.csv`, `.json`, `.html`).
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Format::Csv,
            "json" => Format::Json,
            "html" | "htm" => Format::Html,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the report was made (UTC, RFC 3339).
    pub generated: String,
    pub totals: Totals,
    /// What each pass over the mailboxes did, summed over its users.
    pub passes: Vec<SyncPass>,
    pub users: Vec<UserReport>,
    /// Every skipped, failed or converted message of every user.
    pub items: Vec<ProblemItem>,
    /// Every contact or event that failed or was written with notes, of
    /// every user; failed ones first. Absent when no user has contacts or
    /// events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pim_items: Option<Vec<PimProblem>>,
}

impl Report {
    /// Whether any user has contacts or events: only then do the
    /// renderings show them, so a mail-only migration's report is as it
    /// always was.
    pub fn has_pim(&self) -> bool {
        self.pim_items.is_some()
    }
}

/// A user's contacts or events, or their totals: the figures `cutover
/// status` shows, under the same names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PimFigures {
    /// In the target as the source last had them.
    pub written: u64,
    /// Not in the target: refused by it, unreadable on the source, or
    /// written by a run that stopped before the target confirmed it.
    pub failed: u64,
    /// Deleted on the source, copy kept in the target.
    pub deleted_on_source_kept: u64,
    /// Deleted on the source and in the target (mirrored).
    pub deleted: u64,
    /// Written with notes on what the target could not hold.
    pub with_notes: u64,
}

impl PimFigures {
    pub(crate) fn of(c: &PimCounts) -> PimFigures {
        PimFigures {
            written: c.written,
            failed: c.failed,
            deleted_on_source_kept: c.gone_kept,
            deleted: c.deleted,
            with_notes: c.with_notes,
        }
    }

    fn add(&mut self, other: &PimFigures) {
        self.written += other.written;
        self.failed += other.failed;
        self.deleted_on_source_kept += other.deleted_on_source_kept;
        self.deleted += other.deleted;
        self.with_notes += other.with_notes;
    }
}

/// One contact or event the admin may have to look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PimProblem {
    pub email: String,
    /// `contact` or `event`.
    pub kind: String,
    /// The source collection's display name (address book, calendar, or
    /// Takeout file).
    pub collection: String,
    /// The item's vCard/iCalendar UID, or its key in the source collection
    /// (a DAV href) when it has none.
    pub uid: String,
    /// `failed` (the target has no copy), `update failed` (the target keeps
    /// the version written before) or `written` (with notes).
    pub state: String,
    /// Why it failed or, for a written item, what the target could not
    /// hold of it (its notes).
    pub reason: String,
}

/// The reason shown for a write that a run announced and never saw
/// confirmed: no reason was recorded because none was known.
pub(crate) const UNCONFIRMED: &str = "the run stopped before the target confirmed the write; the next run looks for it in the target before writing it again";

impl PimProblem {
    fn new(
        email: &str,
        collection: &crate::checkpoint::PimCollection,
        item: &crate::checkpoint::PimItem,
    ) -> PimProblem {
        let (state, reason) = match item.state {
            PimState::Written => ("written", item.notes.clone().unwrap_or_default()),
            PimState::Writing => ("failed", UNCONFIRMED.to_owned()),
            _ if item.written_version.is_some() => ("update failed", item.reason.clone().unwrap_or_default()),
            _ => ("failed", item.reason.clone().unwrap_or_default()),
        };
        PimProblem {
            email: email.to_owned(),
            kind: match collection.kind {
                ItemKind::Contact => "contact",
                ItemKind::Event => "event",
                ItemKind::Mail => "mail",
            }
            .to_owned(),
            collection: collection.display_name.clone(),
            uid: if item.uid.trim().is_empty() {
                item.source_key.clone()
            } else {
                item.uid.clone()
            },
            state: state.to_owned(),
            reason,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub users: u64,
    pub done: u64,
    /// Users whose last sync failed, was partial or was interrupted.
    pub not_done: u64,
    pub source_messages: u64,
    pub source_bytes: u64,
    pub copied: u64,
    pub bytes_copied: u64,
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<String, u64>,
    pub failed: u64,
    /// Copies kept in the target whose message was deleted on the source.
    pub deleted_on_source: u64,
    pub syncs: u64,
    /// Sum of the durations of finished syncs.
    pub sync_seconds: u64,
    /// Bytes copied per second of sync time, over all finished syncs.
    pub bytes_per_second: Option<f64>,
    /// Contacts of the users that have any, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<PimFigures>,
    /// Calendar events of the users that have any, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PimFigures>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserReport {
    #[serde(flatten)]
    pub status: UserStatus,
    pub syncs: Vec<SyncReport>,
    /// What its syncs did, summed.
    pub sync_totals: SyncCounts,
    /// Start of the first sync (UTC, RFC 3339).
    pub first_started: Option<String>,
    /// End of the last finished sync (UTC, RFC 3339).
    pub last_finished: Option<String>,
    pub sync_seconds: u64,
    pub bytes_per_second: Option<f64>,
    pub messages_per_second: Option<f64>,
    /// Its contacts; absent when it has no address book in the state DB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<PimFigures>,
    /// Its calendar events; absent when it has no calendar in the state DB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PimFigures>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SyncReport {
    pub id: i64,
    pub email: String,
    pub started: String,
    /// `None` while it runs, or if the run was killed.
    pub finished: Option<String>,
    pub duration_seconds: Option<u64>,
    pub state: String,
    /// What it did: copied, bytes, moved, flags_updated, renamed,
    /// deleted_kept, deleted_mirrored.
    #[serde(flatten)]
    pub counts: SyncCounts,
    pub bytes_per_second: Option<f64>,
    pub error: Option<String>,
    #[serde(skip)]
    started_unix: i64,
}

impl SyncReport {
    pub(crate) fn new(s: &SyncRecord) -> SyncReport {
        // Times are whole seconds: a sync that took less than one counts as
        // one, so a rate is never infinite.
        let duration = s.finished.map(|f| (f - s.started).max(0) as u64);
        SyncReport {
            id: s.id,
            email: s.email.clone(),
            started: format_time(s.started),
            finished: s.finished.map(format_time),
            duration_seconds: duration,
            state: s.state.clone(),
            counts: s.counts,
            bytes_per_second: duration.map(|d| s.counts.bytes as f64 / d.max(1) as f64),
            error: s.error.clone(),
            started_unix: s.started,
        }
    }
}

/// One pass over the mailboxes: every user's first sync (pass 1), every
/// user's second (pass 2), and so on. With every user in every run these
/// are the runs of `cutover migrate`; a user added or retried later counts
/// its own syncs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncPass {
    pub pass: u64,
    /// Users with a sync in this pass.
    pub users: u64,
    /// Of those syncs, the ones that ended done.
    pub done: u64,
    /// The first of their starts (UTC, RFC 3339).
    pub started: String,
    /// The last of their ends; `None` when none has finished.
    pub finished: Option<String>,
    /// What they did, summed.
    #[serde(flatten)]
    pub counts: SyncCounts,
}

/// The passes of the users' sync histories (each oldest first), from the
/// first.
pub fn sync_passes<'a>(histories: impl IntoIterator<Item = &'a [SyncReport]>) -> Vec<SyncPass> {
    let mut passes: Vec<SyncPass> = Vec::new();
    for syncs in histories {
        for (i, s) in syncs.iter().enumerate() {
            if passes.len() <= i {
                passes.push(SyncPass {
                    pass: i as u64 + 1,
                    started: s.started.clone(),
                    ..Default::default()
                });
            }
            let p = &mut passes[i];
            p.users += 1;
            p.done += u64::from(s.state == "done");
            // RFC 3339 UTC times sort as text.
            if s.started < p.started {
                p.started = s.started.clone();
            }
            if s.finished > p.finished {
                p.finished = s.finished.clone();
            }
            p.counts.add(&s.counts);
        }
    }
    passes
}

/// Reads everything a report shows from the state DB.
pub fn collect(state_path: &Path) -> Result<Report, CheckpointError> {
    let cp = Checkpoint::open_existing(state_path)?;
    let mut totals = Totals::default();
    let mut users = Vec::new();
    let mut items = Vec::new();
    let mut pim_items: Option<Vec<PimProblem>> = None;
    for email in cp.user_emails()? {
        let status = cp.user_status(&email)?;
        let syncs: Vec<SyncReport> = cp.syncs(&email)?.iter().map(SyncReport::new).collect();
        let finished: Vec<&SyncReport> = syncs.iter().filter(|s| s.duration_seconds.is_some()).collect();
        let sync_seconds: u64 = finished.iter().map(|s| s.duration_seconds.unwrap_or(0).max(1)).sum();
        let bytes: u64 = finished.iter().map(|s| s.counts.bytes).sum();
        let copied: u64 = finished.iter().map(|s| s.counts.copied).sum();
        let mut sync_totals = SyncCounts::default();
        for s in &syncs {
            sync_totals.add(&s.counts);
        }
        totals.users += 1;
        if status.state == "done" {
            totals.done += 1;
        } else if matches!(status.state.as_str(), "failed" | "partial" | "interrupted") {
            totals.not_done += 1;
        }
        totals.source_messages += status.source_messages;
        totals.source_bytes += status.source_bytes;
        totals.copied += status.copied;
        totals.bytes_copied += status.bytes_copied;
        totals.skipped += status.skipped;
        for (reason, n) in &status.skipped_by_reason {
            *totals.skipped_by_reason.entry(reason.clone()).or_default() += n;
        }
        totals.failed += status.failed;
        totals.deleted_on_source += status.deleted_on_source;
        totals.syncs += syncs.len() as u64;
        totals.sync_seconds += sync_seconds;
        items.extend(cp.problem_items(&email)?);
        // A user's contacts or events are reported once it has an address
        // book or calendar in the state DB, even an empty one: "0 written"
        // then says the collection was found and had nothing to copy.
        let pim = |kind: ItemKind, total: &mut Option<PimFigures>| -> Result<Option<PimFigures>, CheckpointError> {
            if cp.pim_collections(&email, kind)?.is_empty() {
                return Ok(None);
            }
            let figures = PimFigures::of(&cp.pim_counts(&email, kind)?);
            total.get_or_insert_default().add(&figures);
            Ok(Some(figures))
        };
        let contacts = pim(ItemKind::Contact, &mut totals.contacts)?;
        let events = pim(ItemKind::Event, &mut totals.events)?;
        if contacts.is_some() || events.is_some() {
            let list = pim_items.get_or_insert_default();
            list.extend(
                cp.pim_problems(&email)?
                    .iter()
                    .map(|(c, i)| PimProblem::new(&email, c, i)),
            );
        }
        users.push(UserReport {
            first_started: syncs.first().map(|s| s.started.clone()),
            last_finished: syncs.iter().rev().find_map(|s| s.finished.clone()),
            sync_seconds,
            bytes_per_second: (sync_seconds > 0).then(|| bytes as f64 / sync_seconds as f64),
            messages_per_second: (sync_seconds > 0).then(|| copied as f64 / sync_seconds as f64),
            status,
            syncs,
            sync_totals,
            contacts,
            events,
        });
    }
    let total_bytes: u64 = users
        .iter()
        .flat_map(|u| &u.syncs)
        .filter(|s| s.duration_seconds.is_some())
        .map(|s| s.counts.bytes)
        .sum();
    totals.bytes_per_second = (totals.sync_seconds > 0).then(|| total_bytes as f64 / totals.sync_seconds as f64);
    Ok(Report {
        generated: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        totals,
        passes: sync_passes(users.iter().map(|u| u.syncs.as_slice())),
        users,
        items,
        pim_items: pim_items.map(|mut list| {
            // Failed ones first over all users, as each user's are.
            list.sort_by_key(|p| p.state == "written");
            list
        }),
    })
}

/// Writes the report in `format` to `output` (CSV: and its two companion
/// files, three with contacts or events), each created mode 0600; returns
/// the files written.
pub fn write(report: &Report, format: Format, output: &Path) -> Result<Vec<PathBuf>, String> {
    let files: Vec<(PathBuf, Vec<u8>)> = match format {
        Format::Json => {
            let mut json = serde_json::to_vec_pretty(report).map_err(|e| format!("cannot encode the report: {e}"))?;
            json.push(b'\n');
            vec![(output.to_path_buf(), json)]
        }
        Format::Html => vec![(output.to_path_buf(), render_html(report).into_bytes())],
        Format::Csv => {
            let (users, syncs, items) = render_csv(report)?;
            let (syncs_path, items_path) = csv_companions(output);
            let mut files = vec![(output.to_path_buf(), users), (syncs_path, syncs), (items_path, items)];
            if let Some(pim) = render_pim_csv(report)? {
                files.push((csv_pim_companion(output), pim));
            }
            files
        }
    };
    let mut written = Vec::new();
    for (path, data) in files {
        write_private(&path, &data)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes a file readable by its owner only: into a private temporary file
/// next to it, then renamed over it, so a reader never sees half a report
/// and an existing file with looser permissions is replaced, not reused.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot write {}: {e}; check that the directory {} exists and is writable",
            path.display(),
            dir.display()
        )
    })
}

/// "2h 03m 04s", "4m 05s", "12s", "<1s".
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        0 => "<1s".to_owned(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m {:02}s", s / 3600, (s % 3600) / 60, s % 60),
    }
}

/// The sample report the renderers' tests share: one user, one sync and
/// one skipped message whose subject is hostile to every format.
#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample() -> Report {
        let status = UserStatus {
            email: "a@x.test".into(),
            state: "done".into(),
            folders: 2,
            source_messages: 3,
            copied: 2,
            skipped: 1,
            skipped_by_reason: [("too large".to_owned(), 1)].into_iter().collect(),
            bytes_copied: 2048,
            source_bytes: 4096,
            ..Default::default()
        };
        let sync = SyncReport::new(&SyncRecord {
            id: 1,
            email: "a@x.test".into(),
            started: 1_700_000_000,
            finished: Some(1_700_000_010),
            state: "done".into(),
            counts: SyncCounts {
                copied: 2,
                bytes: 2048,
                moved: 3,
                flags_updated: 4,
                renamed: 1,
                deleted_kept: 5,
                deleted_mirrored: 6,
            },
            error: None,
        });
        Report {
            generated: "2026-01-01T00:00:00Z".into(),
            totals: Totals {
                users: 1,
                done: 1,
                skipped: 1,
                skipped_by_reason: [("too large".to_owned(), 1)].into_iter().collect(),
                ..Default::default()
            },
            users: vec![UserReport {
                status,
                first_started: Some(sync.started.clone()),
                last_finished: sync.finished.clone(),
                sync_seconds: 10,
                bytes_per_second: Some(204.8),
                messages_per_second: Some(0.2),
                sync_totals: sync.counts,
                syncs: vec![sync.clone()],
                contacts: None,
                events: None,
            }],
            passes: sync_passes([std::slice::from_ref(&sync)]),
            items: vec![ProblemItem {
                email: "a@x.test".into(),
                folder: "INBOX".into(),
                uid: 7,
                internal_date: "2024-06-01T00:00:00Z".into(),
                size: 5000,
                message_id: Some("<m@x>".into()),
                subject: Some("=HYPERLINK(\"http://evil\") <script>alert(1)</script>".into()),
                state: "skipped".into(),
                reason: "too large".into(),
            }],
            pim_items: None,
        }
    }

    #[test]
    fn reports_are_private_even_over_an_existing_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&sample(), Format::Json, &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["users"][0]["syncs"][0]["duration_seconds"], 10);
        let sync = &v["users"][0]["syncs"][0];
        assert_eq!(
            [
                &sync["copied"],
                &sync["moved"],
                &sync["flags_updated"],
                &sync["renamed"],
                &sync["deleted_kept"],
                &sync["deleted_mirrored"]
            ],
            [2, 3, 4, 1, 5, 6]
        );
        assert_eq!(v["passes"][0]["moved"], 3);
    }

    fn sync(email: &str, started: i64, finished: Option<i64>, state: &str, counts: SyncCounts) -> SyncReport {
        SyncReport::new(&SyncRecord {
            id: started,
            email: email.into(),
            started,
            finished,
            state: state.into(),
            counts,
            error: None,
        })
    }

    /// Every user's first syncs make pass 1, their second ones pass 2: how
    /// many users, how many done, from the first start to the last end,
    /// and what they did summed.
    #[test]
    fn passes_sum_every_users_nth_sync() {
        let counts = |copied, moved, deleted_kept| SyncCounts {
            copied,
            moved,
            deleted_kept,
            ..Default::default()
        };
        let a = vec![
            sync("a@x", 100, Some(200), "done", counts(10, 0, 0)),
            sync("a@x", 1_000, Some(1_100), "done", counts(1, 2, 3)),
        ];
        let b = vec![
            sync("b@x", 50, Some(300), "partial", counts(5, 0, 0)),
            sync("b@x", 1_050, None, "running", counts(0, 0, 0)),
            sync("b@x", 2_000, Some(2_001), "done", counts(0, 1, 0)),
        ];
        let passes = sync_passes([a.as_slice(), b.as_slice()]);
        assert_eq!(passes.len(), 3);
        let p = &passes[0];
        assert_eq!((p.pass, p.users, p.done, p.counts.copied), (1, 2, 1, 15));
        assert_eq!(
            (p.started.as_str(), p.finished.as_deref()),
            ("1970-01-01T00:00:50Z", Some("1970-01-01T00:05:00Z"))
        );
        let p = &passes[1];
        assert_eq!((p.users, p.done, p.counts), (2, 1, counts(1, 2, 3)));
        assert_eq!(p.finished.as_deref(), Some("1970-01-01T00:18:20Z"));
        let p = &passes[2];
        assert_eq!((p.pass, p.users, p.counts.moved), (3, 1, 1));
    }
}

/// Contacts and events in the report, from a state DB written through the
/// checkpoint as a run writes it; and a mail-only DB's report as it
/// always was.
#[cfg(test)]
mod pim_tests {
    use super::*;
    use crate::checkpoint::PimRecord;

    /// The mail columns of the users CSV, in their order: what scripts and
    /// spreadsheets built on earlier reports read.
    const MAIL_COLUMNS: [&str; 36] = [
        "email",
        "state",
        "folders",
        "source_messages",
        "source_bytes",
        "copied",
        "bytes_copied",
        "skipped",
        "skipped_reasons",
        "skipped_too_large",
        "skipped_over_item_cap",
        "skipped_excluded_folder",
        "skipped_refused_by_target",
        "failed",
        "deleted_on_source",
        "moved",
        "flags_updated",
        "folders_renamed",
        "deleted_kept",
        "deleted_mirrored",
        "syncs",
        "first_sync_start_utc",
        "last_sync_end_utc",
        "sync_seconds",
        "bytes_per_second",
        "messages_per_second",
        "last_error",
        // The contacts and events columns, appended when there are any.
        "contacts_written",
        "contacts_failed",
        "contacts_deleted_kept",
        "contacts_deleted_mirrored",
        "contacts_with_notes",
        "events_written",
        "events_failed",
        "events_deleted_kept",
        "events_deleted_mirrored",
    ];

    const NAMELESS: &str = "the card has no name (no FN and no N); give it one in the source";
    const TWO_UIDS: &str = "the item holds 2 different UIDs (<a@x> and <b@x>); split it in the source";
    const NOTES: &str = "1 more e-mail address (d@x.test) kept in the notes: Outlook contacts hold 3";

    fn written(collection_id: i64, key: &str, uid: &str, notes: Option<&str>) -> PimRecord {
        PimRecord::Written {
            collection_id,
            source_key: key.into(),
            uid: uid.into(),
            version: "v1".into(),
            target_id: format!("T{key}"),
            notes: notes.map(str::to_owned),
        }
    }

    fn failed(collection_id: i64, key: &str, uid: &str, reason: &str) -> PimRecord {
        PimRecord::Failed {
            collection_id,
            source_key: key.into(),
            uid: uid.into(),
            version: "v1".into(),
            reason: reason.into(),
        }
    }

    /// A state DB of two users with one finished mail sync each; with
    /// `pim`, a@x.test also has an address book and a calendar: contacts
    /// written (one with notes) and one failed without a UID, events
    /// written, one failed, one deleted on the source and kept, one
    /// deleted and mirrored. b@x.test has mail only.
    fn state_db(pim: bool) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut cp = Checkpoint::open(&path).unwrap();
        for email in ["a@x.test", "b@x.test"] {
            let sync = cp.begin_sync(email).unwrap();
            let counts = SyncCounts {
                copied: 3,
                bytes: 300,
                ..Default::default()
            };
            cp.finish_sync(sync, email, "done", &counts, None).unwrap();
        }
        if pim {
            let book = cp
                .pim_collection("a@x.test", ItemKind::Contact, "/a/book/", "=Friends")
                .unwrap();
            let cal = cp
                .pim_collection("a@x.test", ItemKind::Event, "/a/cal/", "Work <team>")
                .unwrap();
            cp.apply_pim(&[
                written(book.id, "/a/book/c1.vcf", "c1", Some(NOTES)),
                written(book.id, "/a/book/c2.vcf", "c2", None),
                failed(book.id, "/a/book/nameless.vcf", "", NAMELESS),
                written(cal.id, "/a/cal/e1.ics", "e1", None),
                failed(cal.id, "/a/cal/bad.ics", "ev-bad", TWO_UIDS),
                written(cal.id, "/a/cal/e2.ics", "e2", None),
                PimRecord::Gone {
                    collection_id: cal.id,
                    source_key: "/a/cal/e2.ics".into(),
                },
                written(cal.id, "/a/cal/e3.ics", "e3", None),
                PimRecord::Deleted {
                    collection_id: cal.id,
                    source_key: "/a/cal/e3.ics".into(),
                },
            ])
            .unwrap();
        }
        (dir, path)
    }

    fn read_csv(path: &Path) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(path).unwrap();
        let text = text.strip_prefix('\u{feff}').expect("BOM");
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    fn figures(written: u64, failed: u64, kept: u64, deleted: u64, with_notes: u64) -> PimFigures {
        PimFigures {
            written,
            failed,
            deleted_on_source_kept: kept,
            deleted,
            with_notes,
        }
    }

    #[test]
    fn collect_counts_and_lists_contacts_and_events() {
        let (_d, path) = state_db(true);
        let report = collect(&path).unwrap();
        let a = &report.users[0];
        assert_eq!(a.contacts, Some(figures(2, 1, 0, 0, 1)));
        assert_eq!(a.events, Some(figures(1, 1, 1, 1, 0)));
        let b = &report.users[1];
        assert_eq!((&b.contacts, &b.events), (&None, &None));
        assert_eq!(report.totals.contacts, Some(figures(2, 1, 0, 0, 1)));
        assert_eq!(report.totals.events, Some(figures(1, 1, 1, 1, 0)));
        let list = report.pim_items.as_ref().unwrap();
        let rows: Vec<(&str, &str, &str, &str, &str)> = list
            .iter()
            .map(|p| {
                (
                    p.kind.as_str(),
                    p.collection.as_str(),
                    p.uid.as_str(),
                    p.state.as_str(),
                    p.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                // Without a UID, the item is named by its source key.
                ("contact", "=Friends", "/a/book/nameless.vcf", "failed", NAMELESS),
                ("event", "Work <team>", "ev-bad", "failed", TWO_UIDS),
                ("contact", "=Friends", "c1", "written", NOTES),
            ]
        );
        assert!(list.iter().all(|p| p.email == "a@x.test"));
    }

    #[test]
    fn csv_has_contacts_and_events_columns_and_file() {
        let (dir, path) = state_db(true);
        let report = collect(&path).unwrap();
        let output = dir.path().join("report.csv");
        let files = write(&report, Format::Csv, &output).unwrap();
        let pim_path = dir.path().join("report.contacts_events.csv");
        assert_eq!(files.len(), 4);
        assert_eq!(files[3], pim_path);

        let users = read_csv(&output);
        assert_eq!(users[0][..MAIL_COLUMNS.len()], MAIL_COLUMNS);
        assert_eq!(users[0].last().unwrap(), "events_with_notes");
        let pim_at = users[0].iter().position(|c| c == "contacts_written").unwrap();
        assert_eq!(users[1][0], "a@x.test");
        assert_eq!(users[1][pim_at..], ["2", "1", "0", "0", "1", "1", "1", "1", "1", "0"]);
        // A user without contacts or events: empty cells, not zeros.
        assert_eq!(users[2][0], "b@x.test");
        assert!(users[2][pim_at..].iter().all(String::is_empty), "{:?}", users[2]);

        let pim = read_csv(&pim_path);
        assert_eq!(pim[0], ["email", "kind", "collection", "uid", "state", "reason"]);
        assert_eq!(
            pim[1],
            [
                "a@x.test",
                "contact",
                "'=Friends",
                "/a/book/nameless.vcf",
                "failed",
                NAMELESS
            ]
        );
        assert_eq!(
            pim[2],
            ["a@x.test", "event", "Work <team>", "ev-bad", "failed", TWO_UIDS]
        );
        assert_eq!(pim[3], ["a@x.test", "contact", "'=Friends", "c1", "written", NOTES]);
        assert_eq!(pim.len(), 4);
    }

    #[test]
    fn json_has_contacts_events_and_their_items() {
        let (dir, path) = state_db(true);
        let output = dir.path().join("report.json");
        write(&collect(&path).unwrap(), Format::Json, &output).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
        let a = &v["users"][0];
        assert_eq!(a["email"], "a@x.test");
        assert_eq!(
            [
                &a["contacts"]["written"],
                &a["contacts"]["failed"],
                &a["contacts"]["with_notes"]
            ],
            [2, 1, 1]
        );
        assert_eq!(
            [
                &a["events"]["failed"],
                &a["events"]["deleted_on_source_kept"],
                &a["events"]["deleted"]
            ],
            [1, 1, 1]
        );
        assert!(v["users"][1].get("contacts").is_none());
        assert_eq!(v["totals"]["contacts"]["written"], 2);
        assert_eq!(v["totals"]["events"]["written"], 1);
        let items = v["pim_items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["uid"], "/a/book/nameless.vcf");
        assert_eq!(items[0]["reason"], NAMELESS);
        assert_eq!(items[1]["uid"], "ev-bad");
        assert_eq!(items[1]["kind"], "event");
        assert_eq!(items[1]["reason"], TWO_UIDS);
        assert_eq!(items[2]["state"], "written");
        assert_eq!(items[2]["reason"], NOTES);
    }

    #[test]
    fn html_has_contacts_events_and_their_items_escaped() {
        let (_d, path) = state_db(true);
        let html = render_html(&collect(&path).unwrap());
        assert!(html.contains("Contacts written") && html.contains("Events written"));
        // The per-user table: a@x.test's figures, b@x.test not in it.
        let table = &html[html.find("id=\"pim\"").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        assert!(
            table.contains(
                "<td>a@x.test</td><td class=\"n\">2</td><td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">1</td>\
                 <td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td>"
            ),
            "{table}"
        );
        assert!(!table.contains("b@x.test"));
        let failed = &html[html.find("id=\"pim-failed\"").unwrap()..];
        let failed = &failed[..failed.find("</table>").unwrap()];
        assert!(failed.contains("/a/book/nameless.vcf") && failed.contains(&esc(NAMELESS)));
        assert!(failed.contains("ev-bad") && failed.contains("Work &lt;team&gt;"));
        assert!(failed.contains("(&lt;a@x&gt; and &lt;b@x&gt;)"));
        assert!(!html.contains("<a@x>") && !html.contains("<team>"));
        let notes = &html[html.find("id=\"pim-notes\"").unwrap()..];
        let notes = &notes[..notes.find("</table>").unwrap()];
        assert!(notes.contains("<td>c1</td>") && notes.contains(NOTES));
        assert!(!notes.contains("ev-bad"));
    }

    /// Without contacts or calendars the report is the one it always
    /// was: the same CSV files and columns, no new JSON keys, nothing
    /// about contacts in the page.
    #[test]
    fn a_mail_only_report_is_unchanged() {
        let (dir, path) = state_db(false);
        let report = collect(&path).unwrap();
        assert!(!report.has_pim());

        let output = dir.path().join("report.csv");
        let files = write(&report, Format::Csv, &output).unwrap();
        assert_eq!(
            files,
            [
                output.clone(),
                dir.path().join("report.syncs.csv"),
                dir.path().join("report.items.csv")
            ]
        );
        assert!(!dir.path().join("report.contacts_events.csv").exists());
        let users = read_csv(&output);
        assert_eq!(users[0], MAIL_COLUMNS[..27]);
        assert_eq!(users[1].len(), 27);
        assert_eq!(
            (users[1][0].as_str(), users[1][20].as_str()),
            ("a@x.test", "1"),
            "syncs"
        );

        let json = serde_json::to_value(&report).unwrap();
        for key in ["contacts", "events", "pim_items"] {
            assert!(json.get(key).is_none() && json["totals"].get(key).is_none(), "{key}");
            assert!(json["users"][0].get(key).is_none(), "{key}");
        }

        let html = render_html(&report);
        for text in ["Contacts", "Events written", "id=\"pim"] {
            assert!(!html.contains(text), "{text}");
        }
    }
}

#[cfg(test)]
mod pim_state_tests {
    use super::*;
    use crate::checkpoint::{PimCollection, PimItem};

    /// A failure that left the earlier copy in the target reads apart from
    /// one with no copy, and a write never confirmed says what happens
    /// next, since no reason was recorded for it.
    #[test]
    fn states_read_well_for_the_admin() {
        let collection = PimCollection {
            id: 1,
            kind: ItemKind::Event,
            source_ref: "/a/cal/".into(),
            display_name: "Cal".into(),
            sync_token: None,
            target_ref: None,
            present: true,
        };
        let item = |state, written: Option<&str>, reason: Option<&str>| PimItem {
            source_key: "/a/cal/1.ics".into(),
            uid: "1".into(),
            state,
            written_version: written.map(str::to_owned),
            source_version: Some("v2".into()),
            target_id: written.map(|_| "T1".to_owned()),
            reason: reason.map(str::to_owned),
            notes: None,
        };
        let p = PimProblem::new(
            "a@x.test",
            &collection,
            &item(PimState::Failed, Some("v1"), Some("refused")),
        );
        assert_eq!((p.state.as_str(), p.reason.as_str()), ("update failed", "refused"));
        let p = PimProblem::new("a@x.test", &collection, &item(PimState::Failed, None, Some("refused")));
        assert_eq!((p.state.as_str(), p.reason.as_str()), ("failed", "refused"));
        let p = PimProblem::new("a@x.test", &collection, &item(PimState::Writing, None, None));
        assert_eq!((p.state.as_str(), p.reason.as_str()), ("failed", UNCONFIRMED));
        assert_eq!(p.kind, "event");
    }
}
