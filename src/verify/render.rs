//! The table `cutover verify` prints for people, kept apart from the
//! comparison so the two change for their own reasons.

use super::*;

/// Table for people: one line per folder, then every missing message and
/// the first extra ones.
pub fn render_table(report: &VerifyReport) -> String {
    const EXTRA_SHOWN: usize = 10;
    let header = [
        "USER",
        "FOLDER",
        "TARGET",
        "SOURCE",
        "SKIPPED",
        "EXPECTED",
        "TARGET MSGS",
        "MISSING",
        "EXTRA",
        "EXPECTED SIZE",
        "TARGET SIZE",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for u in &report.users {
        if let Some(e) = &u.error {
            let mut row = vec![u.email.clone(), format!("NOT VERIFIED: {e}")];
            row.resize(header.len(), String::new());
            rows.push(row);
            continue;
        }
        for f in &u.folders {
            let skipped: u64 = f.skipped.values().sum();
            rows.push(if f.excluded {
                let mut row = vec![
                    u.email.clone(),
                    f.source.join(" + "),
                    "(excluded)".into(),
                    f.source_messages.to_string(),
                    f.source_messages.to_string(),
                    "0".into(),
                ];
                row.resize(header.len(), String::new());
                row
            } else {
                vec![
                    u.email.clone(),
                    f.source.join(" + "),
                    f.target.clone(),
                    f.source_messages.to_string(),
                    skipped.to_string(),
                    f.in_scope.to_string(),
                    f.target_messages.to_string(),
                    f.missing.to_string(),
                    f.extra.to_string(),
                    human_bytes(f.in_scope_bytes),
                    human_bytes(f.target_bytes),
                ]
            });
        }
    }
    let mut out = crate::table::aligned(&header, &rows);
    for u in &report.users {
        for m in &u.missing {
            out.push_str(&format!(
                "{}: MISSING {} UID {} ({}, {}, {}{}): {}\n",
                u.email,
                m.folder,
                m.uid,
                m.date,
                human_bytes(m.size),
                m.message_id.as_deref().unwrap_or("no Message-ID"),
                m.subject.as_deref().map(|s| format!(", \"{s}\"")).unwrap_or_default(),
                m.status
            ));
        }
        for e in u.extra.iter().filter(|e| e.duplicate_of.is_some()) {
            out.push_str(&format!(
                "{}: DUPLICATE in target {}: {} ({}), also copied into {}: the source holds it once; delete this copy in the target\n",
                u.email,
                e.folder,
                e.message_id.as_deref().unwrap_or("no Message-ID"),
                human_bytes(e.size),
                e.duplicate_of.as_deref().unwrap_or_default()
            ));
        }
        for e in u.extra.iter().filter(|e| e.duplicate_of.is_none()).take(EXTRA_SHOWN) {
            out.push_str(&format!(
                "{}: extra in target {}: {} ({})\n",
                u.email,
                e.folder,
                e.message_id.as_deref().unwrap_or("no Message-ID"),
                human_bytes(e.size)
            ));
        }
        if u.extra.len() > EXTRA_SHOWN {
            out.push_str(&format!(
                "{}: ... and {} more extra messages (all of them with --json)\n",
                u.email,
                u.extra.len() - EXTRA_SHOWN
            ));
        }
    }
    let t = &report.totals;
    out.push_str(&format!(
        "verified {} users: {} complete, {} with missing or duplicated messages ({} missing, {} duplicated), {} could not be verified; {} extra messages in the target\n",
        t.users, t.complete, t.incomplete, t.missing, t.duplicates, t.errors, t.extra
    ));
    out
}
