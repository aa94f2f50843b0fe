//! `cutover status`: what the checkpoint says about every user, as a table
//! for people or one JSON document for tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointError, ProblemItem, UserStatus};
use crate::progress::human_bytes;

#[derive(Serialize)]
pub struct StatusReport {
    pub users: Vec<UserEntry>,
    pub totals: Totals,
    /// The state DBs this view was made from (one per shard).
    pub state_dbs: Vec<String>,
    /// Problems with the merge (an unreadable DB, a user found in two
    /// shards' DBs); empty when all is well.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct UserEntry {
    #[serde(flatten)]
    pub status: UserStatus,
    /// Every skipped, failed or converted message, with its reason.
    pub items: Vec<ProblemItem>,
    /// The state DB this user's figures come from.
    pub state_db: String,
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
    let mut read = 0;
    for path in state_paths {
        let entries = match read_one(path) {
            Ok(e) => e,
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
        users,
        totals,
        state_dbs: state_paths.iter().map(|p| p.display().to_string()).collect(),
        warnings,
    })
}

fn read_one(path: &Path) -> Result<Vec<UserEntry>, CheckpointError> {
    let cp = Checkpoint::open_existing(path)?;
    let mut out = Vec::new();
    for email in cp.user_emails()? {
        let status = cp.user_status(&email)?;
        let items = cp.problem_items(&email)?;
        out.push(UserEntry {
            status,
            items,
            state_db: path.display().to_string(),
        });
    }
    Ok(out)
}

pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let header = [
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
        "LAST ERROR",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
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
            s.deleted_on_source.to_string(),
            human_bytes(s.bytes_copied),
            match &s.last_throttle {
                Some(when) if s.throttled > 0 => format!("{} (last {when})", s.throttled),
                _ => s.throttled.to_string(),
            },
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
        t.deleted_on_source.to_string(),
        human_bytes(t.bytes_copied),
        t.throttled.to_string(),
        String::new(),
        String::new(),
    ]);
    out.push_str(&crate::table::aligned(&header, &rows));
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
