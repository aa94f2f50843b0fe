//! `cutover report`: what an admin hands on after (or during) a migration,
//! from the checkpoint alone: per user the state, what the source holds,
//! what was copied, skipped (and why) and failed (and with what error), the
//! bytes, every sync with its start, end, duration, rate and what it changed
//! (copied, moved, flags updated, folders renamed, deletions on the source
//! kept or mirrored), those totalled per pass, and every skipped, failed or
//! converted message. Three renderings of the same [`Report`]:
//!
//! - CSV for spreadsheets: `<output>` holds one row per user,
//!   `<stem>.syncs.csv` one row per sync and `<stem>.items.csv` one row per
//!   skipped, failed or converted message (UTF-8 with a BOM so Excel reads accents,
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

use crate::checkpoint::{Checkpoint, CheckpointError, ProblemItem, SyncCounts, SyncRecord, UserStatus, format_time};

mod charts;
mod csv;
mod html;

pub use self::csv::{csv_companions, render_csv};
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
        users.push(UserReport {
            first_started: syncs.first().map(|s| s.started.clone()),
            last_finished: syncs.iter().rev().find_map(|s| s.finished.clone()),
            sync_seconds,
            bytes_per_second: (sync_seconds > 0).then(|| bytes as f64 / sync_seconds as f64),
            messages_per_second: (sync_seconds > 0).then(|| copied as f64 / sync_seconds as f64),
            status,
            syncs,
            sync_totals,
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
    })
}

/// Writes the report in `format` to `output` (CSV: and its two companion
/// files), each created mode 0600; returns the files written.
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
            vec![(output.to_path_buf(), users), (syncs_path, syncs), (items_path, items)]
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
