//! The CSV rendering, for spreadsheets: the users file and its two
//! companions (syncs, items), and a third one listing contacts and events
//! when there are any, written the way Excel reads them (UTF-8 with
//! a BOM, UTC times as `YYYY-MM-DD HH:MM:SS`, CRLF) and with every cell
//! that would start a formula prefixed with `'`.

use std::path::{Path, PathBuf};

use super::{PimFigures, Report};

/// `report.csv` → `report`; a name not ending in `.csv` is its own stem.
fn csv_stem(output: &Path) -> String {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.to_ascii_lowercase().ends_with(".csv") {
        name[..name.len() - 4].to_owned()
    } else {
        name
    }
}

/// `report.csv` → (`report.syncs.csv`, `report.items.csv`).
pub fn csv_companions(output: &Path) -> (PathBuf, PathBuf) {
    let stem = csv_stem(output);
    (
        output.with_file_name(format!("{stem}.syncs.csv")),
        output.with_file_name(format!("{stem}.items.csv")),
    )
}

/// `report.csv` → `report.contacts_events.csv`: the contacts and events
/// that failed or were written with notes.
pub fn csv_pim_companion(output: &Path) -> PathBuf {
    output.with_file_name(format!("{}.contacts_events.csv", csv_stem(output)))
}

/// The columns a users CSV gains, after all the mail ones, when any user
/// has contacts or events: each figure for contacts, then for events.
const PIM_COLUMNS: [&str; 5] = ["written", "failed", "deleted_kept", "deleted_mirrored", "with_notes"];

/// A user's figures in the order of [`PIM_COLUMNS`]; empty cells for a
/// user without any address book (or calendar), so "none" reads apart
/// from "0".
fn pim_cells(figures: Option<&PimFigures>) -> Vec<String> {
    match figures {
        Some(f) => [f.written, f.failed, f.deleted_on_source_kept, f.deleted, f.with_notes]
            .iter()
            .map(u64::to_string)
            .collect(),
        None => vec![String::new(); PIM_COLUMNS.len()],
    }
}

/// The skip reasons every users CSV has a column for, in this order, so
/// a spreadsheet can sum them; other reasons only appear in
/// `skipped_reasons`.
const REASON_COLUMNS: [&str; 4] = ["too large", "over item cap", "excluded folder", "refused by target"];

/// Excel time: UTC `YYYY-MM-DD HH:MM:SS` from our RFC 3339 form.
fn excel_time(t: Option<&str>) -> String {
    t.map(|t| t.trim_end_matches('Z').replace('T', " ")).unwrap_or_default()
}

/// A text cell that a spreadsheet would run as a formula gets a leading
/// `'` (subjects and folder names come from outside).
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn rate(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.0}")).unwrap_or_default()
}

fn csv_bytes(rows: Vec<Vec<String>>) -> Result<Vec<u8>, String> {
    // The BOM tells Excel the file is UTF-8.
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    for row in rows {
        w.write_record(&row).map_err(|e| format!("cannot write CSV: {e}"))?;
    }
    w.into_inner().map_err(|e| format!("cannot write CSV: {e}"))
}

type CsvFiles = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The users, syncs and items CSV files.
pub fn render_csv(report: &Report) -> Result<CsvFiles, String> {
    let mut header: Vec<String> = [
        "email",
        "state",
        "folders",
        "source_messages",
        "source_bytes",
        "copied",
        "bytes_copied",
        "skipped",
        "skipped_reasons",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(
        REASON_COLUMNS
            .iter()
            .map(|r| format!("skipped_{}", r.replace(' ', "_"))),
    );
    header.extend(
        [
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
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    // Appended, so the mail columns keep their places; only when there is
    // something to put in them.
    let pim = report.has_pim();
    if pim {
        for kind in ["contacts", "events"] {
            header.extend(PIM_COLUMNS.iter().map(|c| format!("{kind}_{c}")));
        }
    }
    let mut users = vec![header];
    for u in &report.users {
        let s = &u.status;
        let reasons: Vec<String> = s.skipped_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let mut row = vec![
            cell(&s.email),
            s.state.clone(),
            s.folders.to_string(),
            s.source_messages.to_string(),
            s.source_bytes.to_string(),
            s.copied.to_string(),
            s.bytes_copied.to_string(),
            s.skipped.to_string(),
            cell(&reasons.join("; ")),
        ];
        row.extend(
            REASON_COLUMNS
                .iter()
                .map(|r| s.skipped_by_reason.get(*r).copied().unwrap_or(0).to_string()),
        );
        row.extend([
            s.failed.to_string(),
            s.deleted_on_source.to_string(),
            u.sync_totals.moved.to_string(),
            u.sync_totals.flags_updated.to_string(),
            u.sync_totals.renamed.to_string(),
            u.sync_totals.deleted_kept.to_string(),
            u.sync_totals.deleted_mirrored.to_string(),
            u.syncs.len().to_string(),
            excel_time(u.first_started.as_deref()),
            excel_time(u.last_finished.as_deref()),
            u.sync_seconds.to_string(),
            rate(u.bytes_per_second),
            u.messages_per_second.map(|r| format!("{r:.2}")).unwrap_or_default(),
            cell(s.last_error.as_deref().unwrap_or("")),
        ]);
        if pim {
            row.extend(pim_cells(u.contacts.as_ref()));
            row.extend(pim_cells(u.events.as_ref()));
        }
        users.push(row);
    }

    let mut syncs = vec![
        [
            "email",
            "sync_id",
            "started_utc",
            "finished_utc",
            "duration_seconds",
            "state",
            "copied",
            "bytes",
            "bytes_per_second",
            "moved",
            "flags_updated",
            "folders_renamed",
            "deleted_kept",
            "deleted_mirrored",
            "error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for s in report.users.iter().flat_map(|u| &u.syncs) {
        syncs.push(vec![
            cell(&s.email),
            s.id.to_string(),
            excel_time(Some(&s.started)),
            excel_time(s.finished.as_deref()),
            s.duration_seconds.map(|d| d.to_string()).unwrap_or_default(),
            s.state.clone(),
            s.counts.copied.to_string(),
            s.counts.bytes.to_string(),
            rate(s.bytes_per_second),
            s.counts.moved.to_string(),
            s.counts.flags_updated.to_string(),
            s.counts.renamed.to_string(),
            s.counts.deleted_kept.to_string(),
            s.counts.deleted_mirrored.to_string(),
            cell(s.error.as_deref().unwrap_or("")),
        ]);
    }

    let mut items = vec![
        [
            "email",
            "folder",
            "uid",
            "date_utc",
            "subject",
            "size",
            "message_id",
            "state",
            "reason",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for i in &report.items {
        items.push(vec![
            cell(&i.email),
            cell(&i.folder),
            i.uid.to_string(),
            excel_time(Some(&i.internal_date)),
            cell(i.subject.as_deref().unwrap_or("")),
            i.size.to_string(),
            cell(i.message_id.as_deref().unwrap_or("")),
            i.state.clone(),
            cell(&i.reason),
        ]);
    }
    Ok((csv_bytes(users)?, csv_bytes(syncs)?, csv_bytes(items)?))
}

/// The contacts and events CSV: one row per contact or event that failed
/// (the reason says what to fix in the source item) or was written with
/// notes on what the target could not hold; `None` when no user has
/// contacts or events, so a mail-only migration writes no such file.
pub fn render_pim_csv(report: &Report) -> Result<Option<Vec<u8>>, String> {
    let Some(list) = &report.pim_items else {
        return Ok(None);
    };
    let mut rows = vec![
        ["email", "kind", "collection", "uid", "state", "reason"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for p in list {
        rows.push(vec![
            cell(&p.email),
            p.kind.clone(),
            cell(&p.collection),
            cell(&p.uid),
            p.state.clone(),
            cell(&p.reason),
        ]);
    }
    csv_bytes(rows).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn csv_is_excel_friendly_and_defuses_formulas() {
        let (users, syncs, items) = render_csv(&sample()).unwrap();
        for f in [&users, &syncs, &items] {
            assert!(f.starts_with(b"\xEF\xBB\xBF"), "BOM");
        }
        let users = String::from_utf8(users).unwrap();
        assert!(users.contains("skipped_too_large"));
        assert!(users.contains("2023-11-14 22:13:20"), "{users}");
        let syncs = String::from_utf8(syncs).unwrap();
        let mut lines = syncs.trim_start_matches('\u{feff}').lines();
        assert!(
            lines
                .next()
                .unwrap()
                .ends_with(",bytes_per_second,moved,flags_updated,folders_renamed,deleted_kept,deleted_mirrored,error"),
            "{syncs}"
        );
        assert!(
            lines.next().unwrap().ends_with(",done,2,2048,205,3,4,1,5,6,"),
            "{syncs}"
        );
        let items = String::from_utf8(items).unwrap();
        assert!(items.contains("\"'=HYPERLINK"), "{items}");
    }

    #[test]
    fn companions_sit_next_to_the_output() {
        assert_eq!(
            csv_companions(Path::new("/r/report.csv")),
            (
                PathBuf::from("/r/report.syncs.csv"),
                PathBuf::from("/r/report.items.csv")
            )
        );
        assert_eq!(
            csv_companions(Path::new("out")),
            (PathBuf::from("out.syncs.csv"), PathBuf::from("out.items.csv"))
        );
    }
}
