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
    out.push_str(&render_pim(report));
    let t = &report.totals;
    let pim = report.users.iter().any(|u| u.pim.is_some());
    let problems = if pim {
        format!(
            "{} with missing, duplicated or differing items ({} messages missing, {} duplicated, {} with other flags)",
            t.incomplete, t.missing, t.duplicates, t.flags_differ
        )
    } else if t.flags_differ == 0 {
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
    if pim {
        out.push_str(&format!(
            "contacts and calendars: {} missing, {} differing, {} duplicated, {} failed at copy time; {} extra in the target\n",
            t.pim_missing, t.pim_differ, t.pim_duplicates, t.pim_failed_at_copy, t.pim_extra
        ));
    }
    out
}

/// Contacts and calendars, for the users whose config copies them: one
/// line per target collection, then every finding (the first extra items).
fn render_pim(report: &VerifyReport) -> String {
    const EXTRA_SHOWN: usize = 10;
    if report.users.iter().all(|u| u.pim.is_none()) {
        return String::new();
    }
    let header = [
        "USER",
        "KIND",
        "COLLECTION",
        "SOURCE",
        "TARGET",
        "MATCHING",
        "MISSING",
        "DIFFERING",
        "DUPLICATES",
        "FAILED",
        "EXTRA",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for u in &report.users {
        let Some(p) = &u.pim else { continue };
        if let Some(e) = &p.error {
            let mut row = vec![
                u.email.clone(),
                "contacts+calendars".into(),
                format!("NOT VERIFIED: {e}"),
            ];
            row.resize(header.len(), String::new());
            rows.push(row);
            continue;
        }
        for c in &p.collections {
            rows.push(vec![
                u.email.clone(),
                c.kind.to_owned(),
                c.source.join(" + "),
                c.source_items.to_string(),
                c.target_items.to_string(),
                c.matching.to_string(),
                c.missing.to_string(),
                c.differ.to_string(),
                c.duplicates.to_string(),
                c.failed_at_copy.to_string(),
                c.extra.to_string(),
            ]);
        }
    }
    let mut out = String::from("\n");
    out.push_str(&crate::table::aligned(&header, &rows));
    for u in &report.users {
        let Some(p) = &u.pim else { continue };
        let mut extra = 0;
        for f in &p.findings {
            let what = match f.finding {
                Finding::Missing => "MISSING",
                Finding::Differs => "DIFFERS",
                Finding::Duplicate => "DUPLICATE",
                Finding::FailedAtCopy => "FAILED AT COPY TIME",
                Finding::Extra => {
                    extra += 1;
                    if extra > EXTRA_SHOWN {
                        continue;
                    }
                    "extra"
                }
            };
            let uid = match (&f.uid, &f.item) {
                (Some(u), _) => format!(" UID {u}"),
                (None, Some(item)) => format!(" {item}"),
                (None, None) => String::new(),
            };
            let name = if f.name.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", f.name)
            };
            let differences: Vec<String> = f.differences.iter().map(describe_difference).collect();
            let differences = if differences.is_empty() {
                String::new()
            } else {
                format!(": {}", differences.join("; "))
            };
            out.push_str(&format!(
                "{}: {what} {} in {}:{uid}{name}{differences}; {}\n",
                u.email, f.kind, f.collection, f.status
            ));
        }
        if extra > EXTRA_SHOWN {
            out.push_str(&format!(
                "{}: ... and {} more extra contacts and events (all of them with --json)\n",
                u.email,
                extra - EXTRA_SHOWN
            ));
        }
    }
    out
}

/// One field's difference on one line: `start: source …, target …`, or
/// for a list `emails: only in the source a4@…; only in the target …`.
fn describe_difference(d: &FieldDifference) -> String {
    let shown = |v: &str| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.to_owned()
        }
    };
    if d.field == "unreadable" {
        return format!("the copy cannot be read: {}", d.target.as_deref().unwrap_or_default());
    }
    if let (Some(s), Some(t)) = (&d.source, &d.target) {
        return format!("{}: source {}, target {}", d.field, shown(s), shown(t));
    }
    let mut parts = Vec::new();
    if !d.only_in_source.is_empty() {
        parts.push(format!("only in the source {}", d.only_in_source.join(", ")));
    }
    if !d.only_in_target.is_empty() {
        parts.push(format!("only in the target {}", d.only_in_target.join(", ")));
    }
    if d.more > 0 {
        parts.push(format!("and {} more", d.more));
    }
    format!("{}: {}", d.field, parts.join(", "))
}
