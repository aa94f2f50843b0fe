//! `cutover status`: what the checkpoint says about every user, as a table
//! for people or one JSON document for tools.

use std::path::Path;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointError, ProblemItem, UserStatus};
use crate::progress::human_bytes;

#[derive(Serialize)]
pub struct StatusReport {
    pub users: Vec<UserEntry>,
    pub totals: Totals,
}

#[derive(Serialize)]
pub struct UserEntry {
    #[serde(flatten)]
    pub status: UserStatus,
    /// Every skipped or failed message, with its reason.
    pub items: Vec<ProblemItem>,
}

#[derive(Serialize, Default)]
pub struct Totals {
    pub users: u64,
    pub done: u64,
    pub source_messages: u64,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes_copied: u64,
}

pub fn collect(state_path: &Path) -> Result<StatusReport, CheckpointError> {
    let cp = Checkpoint::open_existing(state_path)?;
    let mut users = Vec::new();
    let mut totals = Totals::default();
    for email in cp.user_emails()? {
        let status = cp.user_status(&email)?;
        let items = cp.problem_items(&email)?;
        totals.users += 1;
        totals.done += u64::from(status.state == "done");
        totals.source_messages += status.source_messages;
        totals.copied += status.copied;
        totals.skipped += status.skipped;
        totals.failed += status.failed;
        totals.bytes_copied += status.bytes_copied;
        users.push(UserEntry { status, items });
    }
    Ok(StatusReport { users, totals })
}

pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    let header = [
        "USER",
        "STATE",
        "FOLDERS",
        "COPIED/SOURCE",
        "SKIPPED",
        "FAILED",
        "SIZE",
        "LAST SYNC",
        "LAST ERROR",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for u in &report.users {
        let s = &u.status;
        let skipped = if s.skipped_by_reason.is_empty() {
            "0".to_owned()
        } else {
            let reasons: Vec<String> = s.skipped_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
            format!("{} ({})", s.skipped, reasons.join(", "))
        };
        rows.push(vec![
            s.email.clone(),
            s.state.clone(),
            s.folders.to_string(),
            format!("{}/{}", s.copied, s.source_messages),
            skipped,
            s.failed.to_string(),
            human_bytes(s.bytes_copied),
            s.last_sync.clone().unwrap_or_else(|| "never".into()),
            s.last_error.clone().unwrap_or_default(),
        ]);
    }
    let t = &report.totals;
    rows.push(vec![
        format!("TOTAL ({} users)", t.users),
        format!("{} done", t.done),
        String::new(),
        format!("{}/{}", t.copied, t.source_messages),
        t.skipped.to_string(),
        t.failed.to_string(),
        human_bytes(t.bytes_copied),
        String::new(),
        String::new(),
    ]);
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
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
