//! The table `cutover verify` prints for people, kept apart from the
//! comparison so the two change for their own reasons.

use super::*;

/// Table for people: one line per folder, then every missing message, the
/// first copies whose flags differ and the first extra ones.
pub fn render_table(report: &VerifyReport) -> String {
    const EXTRA_SHOWN: usize = 10;
    const FLAGS_SHOWN: usize = 20;
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
        for f in u.flags_differ.iter().take(FLAGS_SHOWN) {
            out.push_str(&format!(
                "{}: FLAGS DIFFER {} UID {} ({}{}): source {}, target {}; {}\n",
                u.email,
                f.folder,
                f.uid,
                f.message_id.as_deref().unwrap_or("no Message-ID"),
                f.subject.as_deref().map(|s| format!(", \"{s}\"")).unwrap_or_default(),
                f.source,
                f.target,
                f.status
            ));
        }
        if u.flags_differ.len() > FLAGS_SHOWN {
            out.push_str(&format!(
                "{}: ... and {} more copies whose flags differ (all of them with --json)\n",
                u.email,
                u.flags_differ.len() - FLAGS_SHOWN
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
    let problems = if t.flags_differ == 0 {
        format!(
            "{} with missing or duplicated messages ({} missing, {} duplicated)",
            t.incomplete, t.missing, t.duplicates
        )
    } else {
        format!(
            "{} with missing, duplicated or differently flagged messages ({} missing, {} duplicated, {} with other flags)",
            t.incomplete, t.missing, t.duplicates, t.flags_differ
        )
    };
    out.push_str(&format!(
        "verified {} users: {} complete, {problems}, {} could not be verified; {} extra messages in the target\n",
        t.users, t.complete, t.errors, t.extra
    ));
    out
}
