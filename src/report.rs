//! `cutover report`: what an admin hands on after (or during) a migration,
//! from the checkpoint alone: per user the state, what the source holds,
//! what was copied, skipped (and why) and failed (and with what error), the
//! bytes, every sync with its start, end, duration and rate, and every
//! skipped or failed message. Three renderings of the same [`Report`]:
//!
//! - CSV for spreadsheets: `<output>` holds one row per user,
//!   `<stem>.syncs.csv` one row per sync and `<stem>.items.csv` one row per
//!   skipped or failed message (UTF-8 with a BOM so Excel reads accents,
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointError, ProblemItem, SyncRecord, UserStatus, format_time};
use crate::progress::human_bytes;

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

/// At most this many skipped or failed messages are listed in the HTML
/// page (failed ones first); CSV and JSON always list all of them. A
/// mailbox over its item cap can skip hundreds of thousands of messages,
/// which no browser table survives.
pub const HTML_ITEM_LIMIT: usize = 5000;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the report was made (UTC, RFC 3339).
    pub generated: String,
    pub totals: Totals,
    pub users: Vec<UserReport>,
    /// Every skipped or failed message of every user.
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
    pub copied: u64,
    pub bytes: u64,
    pub bytes_per_second: Option<f64>,
    pub error: Option<String>,
    #[serde(skip)]
    started_unix: i64,
}

impl SyncReport {
    fn new(s: &SyncRecord) -> SyncReport {
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
            copied: s.copied,
            bytes: s.bytes,
            bytes_per_second: duration.map(|d| s.bytes as f64 / d.max(1) as f64),
            error: s.error.clone(),
            started_unix: s.started,
        }
    }
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
        let bytes: u64 = finished.iter().map(|s| s.bytes).sum();
        let copied: u64 = finished.iter().map(|s| s.copied).sum();
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
        });
    }
    let total_bytes: u64 = users
        .iter()
        .flat_map(|u| &u.syncs)
        .filter(|s| s.duration_seconds.is_some())
        .map(|s| s.bytes)
        .sum();
    totals.bytes_per_second = (totals.sync_seconds > 0).then(|| total_bytes as f64 / totals.sync_seconds as f64);
    Ok(Report {
        generated: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        totals,
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

/// `report.csv` → (`report.syncs.csv`, `report.items.csv`).
pub fn csv_companions(output: &Path) -> (PathBuf, PathBuf) {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = if name.to_ascii_lowercase().ends_with(".csv") {
        &name[..name.len() - 4]
    } else {
        name.as_str()
    };
    (
        output.with_file_name(format!("{stem}.syncs.csv")),
        output.with_file_name(format!("{stem}.items.csv")),
    )
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

// ----- CSV ----------------------------------------------------------------

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
            u.syncs.len().to_string(),
            excel_time(u.first_started.as_deref()),
            excel_time(u.last_finished.as_deref()),
            u.sync_seconds.to_string(),
            rate(u.bytes_per_second),
            u.messages_per_second.map(|r| format!("{r:.2}")).unwrap_or_default(),
            cell(s.last_error.as_deref().unwrap_or("")),
        ]);
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
            s.copied.to_string(),
            s.bytes.to_string(),
            rate(s.bytes_per_second),
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

// ----- HTML ---------------------------------------------------------------

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// "2026-01-02 03:04:05" from the RFC 3339 form (still sorts as text).
fn html_time(t: &str) -> String {
    esc(t.trim_end_matches('Z').replacen('T', " ", 1).as_str())
}

fn human_rate(bytes_per_second: Option<f64>) -> String {
    match bytes_per_second {
        Some(r) => format!("{}/s", human_bytes(r.round() as u64)),
        None => "–".to_owned(),
    }
}

const STYLE: &str = "
:root{--fg:#1d2330;--muted:#5d6677;--line:#dfe3ea;--bg:#f6f7f9;--accent:#2f6fdb;--bad:#c73a3a;--warn:#b7791f;--ok:#2f855a}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:20px 32px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#b9c1d0}
main{padding:20px 32px 40px;max-width:1400px}
h2{font-size:17px;margin:28px 0 10px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .v{font-size:22px;font-weight:600}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .s{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th::after{content:' \\2195';color:#9aa3b2}
table.sortable th[aria-sort=ascending]::after{content:' \\2191';color:var(--accent)}
table.sortable th[aria-sort=descending]::after{content:' \\2193';color:var(--accent)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e2e8f0}
.state.done{background:#d7f0e0;color:var(--ok)}
.state.failed,.state.partial{background:#f8dcdc;color:var(--bad)}
.state.interrupted,.state.syncing,.state.running{background:#fcefd6;color:var(--warn)}
.err{color:var(--bad);min-width:260px;max-width:420px;font-size:12px;overflow-wrap:anywhere}
.scroll{overflow-x:auto;border-radius:6px}
td.t{white-space:nowrap}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px;margin-top:28px}
.chart{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.chart h2{margin:6px 0}
.muted{color:var(--muted)}
svg text{font:11px system-ui,sans-serif;fill:#5d6677}
";

/// Sorting for `table.sortable`: click a heading (again to reverse). A
/// link ending in `#sort=<table id>:<column>:<asc|desc>` (columns from 0)
/// opens the page sorted, e.g. `report.html#sort=users:6:desc` for the
/// users with the most failures first.
const SCRIPT: &str = "
(function(){
  function key(cell, numeric){
    var v = cell.getAttribute('data-v');
    if (v === null) v = cell.textContent;
    return numeric ? (parseFloat(v) || 0) : v.toLowerCase();
  }
  function sortBy(table, col, asc){
    var heads = table.tHead.rows[0].cells;
    if (col < 0 || col >= heads.length) return;
    for (var j = 0; j < heads.length; j++) heads[j].removeAttribute('aria-sort');
    heads[col].setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var numeric = heads[col].getAttribute('data-type') === 'num';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return asc ? c : -c;
    });
    for (var r = 0; r < rows.length; r++) body.appendChild(rows[r]);
  }
  var tables = document.querySelectorAll('table.sortable');
  for (var t = 0; t < tables.length; t++) (function(table){
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) (function(th, col){
      th.addEventListener('click', function(){
        sortBy(table, col, th.getAttribute('aria-sort') !== 'ascending');
      });
    })(heads[i], i);
    table.setAttribute('data-sortable', 'ready');
  })(tables[t]);
  var m = /^#sort=([A-Za-z0-9_-]+):(\\d+):(asc|desc)$/.exec(location.hash);
  var target = m && document.getElementById(m[1]);
  if (target && target.classList.contains('sortable')) sortBy(target, parseInt(m[2], 10), m[3] === 'asc');
})();
";

fn card(out: &mut String, label: &str, value: &str, sub: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"l\">{}</div><div class=\"v\">{}</div><div class=\"s\">{}</div></div>",
        esc(label),
        esc(value),
        esc(sub)
    );
}

fn state_badge(state: &str) -> String {
    let class: String = state.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("<span class=\"state {class}\">{}</span>", esc(state))
}

/// The page: summary, sortable users table, charts, syncs, items.
pub fn render_html(report: &Report) -> String {
    let t = &report.totals;
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    // Nothing on this page may load anything from anywhere.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>cutover migration report</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n");
    let _ = write!(
        out,
        "<header><h1>Mailbox migration report</h1><p>Generated {} by cutover {} &middot; {} users &middot; times in UTC</p></header>\n<main>\n",
        esc(&report.generated),
        env!("CARGO_PKG_VERSION"),
        t.users
    );

    // Summary.
    out.push_str("<h2>Summary</h2><section class=\"cards\" id=\"summary\">");
    card(
        &mut out,
        "Users done",
        &format!("{} / {}", t.done, t.users),
        &format!("{} failed, partial or interrupted", t.not_done),
    );
    card(
        &mut out,
        "Messages copied",
        &t.copied.to_string(),
        &format!("of {} in the source", t.source_messages),
    );
    card(
        &mut out,
        "Data copied",
        &human_bytes(t.bytes_copied),
        &format!("of {} in the source", human_bytes(t.source_bytes)),
    );
    card(
        &mut out,
        "Skipped",
        &t.skipped.to_string(),
        &if t.skipped_by_reason.is_empty() {
            "none".to_owned()
        } else {
            t.skipped_by_reason
                .iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    card(
        &mut out,
        "Failed",
        &t.failed.to_string(),
        "messages; a rerun retries them",
    );
    card(
        &mut out,
        "Throughput",
        &human_rate(t.bytes_per_second),
        &format!("{} syncs, {} in total", t.syncs, human_duration(t.sync_seconds)),
    );
    out.push_str("</section>\n");

    // Users.
    out.push_str("<h2>Users</h2><p class=\"muted\">Click a column heading to sort.</p>\n");
    out.push_str("<div class=\"scroll\"><table class=\"sortable\" id=\"users\"><thead><tr>");
    for (name, numeric) in [
        ("User", false),
        ("State", false),
        ("Folders", true),
        ("Source items", true),
        ("Copied", true),
        ("Skipped", true),
        ("Failed", true),
        ("Source size", true),
        ("Copied size", true),
        ("Rate", true),
        ("Syncs", true),
        ("First start", false),
        ("Last end", false),
        ("Sync time", true),
        ("Last error", false),
    ] {
        let _ = write!(
            out,
            "<th{}>{}</th>",
            if numeric { " data-type=\"num\" class=\"n\"" } else { "" },
            esc(name)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    for u in &report.users {
        let s = &u.status;
        let skipped_title: Vec<String> = s.skipped_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\" title=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\" data-v=\"{}\">{}</td>\
             <td class=\"n\" data-v=\"{}\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td class=\"n\">{}</td>\
             <td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td class=\"err\">{}</td></tr>",
            esc(&s.email),
            state_badge(&s.state),
            s.folders,
            s.source_messages,
            s.copied,
            esc(&skipped_title.join(", ")),
            s.skipped,
            s.failed,
            s.source_bytes,
            human_bytes(s.source_bytes),
            s.bytes_copied,
            human_bytes(s.bytes_copied),
            u.bytes_per_second.unwrap_or(0.0),
            human_rate(u.bytes_per_second),
            u.syncs.len(),
            html_time(u.first_started.as_deref().unwrap_or("")),
            html_time(u.last_finished.as_deref().unwrap_or("")),
            u.sync_seconds,
            human_duration(u.sync_seconds),
            esc(s.last_error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table></div>\n");

    // Charts.
    out.push_str("<section class=\"charts\">");
    out.push_str("<div class=\"chart\"><h2>Throughput per sync</h2>");
    out.push_str(&throughput_svg(report));
    out.push_str(
        "<p class=\"muted\">Each point is one sync of one mailbox that copied something: bytes copied divided by its duration, at its start time.</p></div>",
    );
    out.push_str("<div class=\"chart\"><h2>Skipped items by reason</h2>");
    out.push_str(&reasons_svg(&t.skipped_by_reason));
    out.push_str("</div></section>\n");

    // Syncs.
    out.push_str("<h2>Syncs</h2>\n<div class=\"scroll\"><table class=\"sortable\" id=\"syncs\"><thead><tr>");
    for (name, numeric) in [
        ("User", false),
        ("Started", false),
        ("Finished", false),
        ("Duration", true),
        ("State", false),
        ("Copied", true),
        ("Bytes", true),
        ("Rate", true),
        ("Error", false),
    ] {
        let _ = write!(
            out,
            "<th{}>{}</th>",
            if numeric { " data-type=\"num\" class=\"n\"" } else { "" },
            esc(name)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    for s in report.users.iter().flat_map(|u| &u.syncs) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\" data-v=\"{}\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td class=\"err\">{}</td></tr>",
            esc(&s.email),
            html_time(&s.started),
            s.finished
                .as_deref()
                .map_or_else(|| "not finished".to_owned(), html_time),
            s.duration_seconds.unwrap_or(0),
            s.duration_seconds.map(human_duration).unwrap_or_else(|| "–".into()),
            state_badge(&s.state),
            s.copied,
            s.bytes,
            human_bytes(s.bytes),
            s.bytes_per_second.unwrap_or(0.0),
            // A resync with nothing new has no meaningful rate.
            human_rate(s.bytes_per_second.filter(|_| s.copied > 0)),
            esc(s.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table></div>\n");

    // Items: failed first, then skipped.
    let mut items: Vec<&ProblemItem> = report.items.iter().collect();
    items.sort_by_key(|i| i.state != "failed");
    let _ = write!(
        out,
        "<h2>Skipped and failed messages</h2>\n<p class=\"muted\">{} messages{}.</p>\n",
        items.len(),
        if items.len() > HTML_ITEM_LIMIT {
            format!(
                "; the first {HTML_ITEM_LIMIT} are listed here (failed first), all of them are in the CSV and JSON reports"
            )
        } else {
            String::new()
        }
    );
    out.push_str("<div class=\"scroll\"><table class=\"sortable\" id=\"items\"><thead><tr>");
    for (name, numeric) in [
        ("User", false),
        ("Folder", false),
        ("Date", false),
        ("Subject", false),
        ("Size", true),
        ("State", false),
        ("Reason", false),
    ] {
        let _ = write!(
            out,
            "<th{}>{}</th>",
            if numeric { " data-type=\"num\" class=\"n\"" } else { "" },
            esc(name)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    for i in items.iter().take(HTML_ITEM_LIMIT) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"t\">{}</td><td title=\"{}\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.email),
            esc(&i.folder),
            html_time(&i.internal_date),
            esc(i.message_id.as_deref().unwrap_or("")),
            esc(i.subject.as_deref().unwrap_or("")),
            i.size,
            human_bytes(i.size),
            state_badge(&i.state),
            esc(&i.reason),
        );
    }
    out.push_str("</tbody></table></div>\n</main>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body></html>\n");
    out
}

/// A round step for about `target` ticks up to `max` (1, 2 or 5 × 10^n).
fn nice_step(max: f64, target: f64) -> f64 {
    let raw = (max / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Scatter of finished syncs: x the start time, y the rate in MiB/s.
fn throughput_svg(report: &Report) -> String {
    const W: f64 = 640.0;
    const H: f64 = 280.0;
    const L: f64 = 62.0;
    const R: f64 = 16.0;
    const T: f64 = 14.0;
    const B: f64 = 42.0;
    let points: Vec<&SyncReport> = report
        .users
        .iter()
        .flat_map(|u| &u.syncs)
        // A resync that found nothing new has no rate worth plotting; it
        // would only pull the scale down to zero.
        .filter(|s| s.bytes_per_second.is_some() && s.copied > 0)
        .collect();
    let mut svg = format!(
        "<svg id=\"throughput\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"Throughput per sync\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No sync has copied anything yet.</text></svg>",
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    let mib = |s: &SyncReport| s.bytes_per_second.unwrap_or(0.0) / (1024.0 * 1024.0);
    let y_max_raw = points.iter().map(|s| mib(s)).fold(0.0, f64::max);
    let step = nice_step(if y_max_raw > 0.0 { y_max_raw } else { 1.0 }, 5.0);
    let y_max = (y_max_raw / step).ceil().max(1.0) * step;
    let t_min = points.iter().map(|s| s.started_unix).min().unwrap_or(0);
    let t_max = points.iter().map(|s| s.started_unix).max().unwrap_or(0);
    let span = (t_max - t_min).max(1) as f64;
    let x = |t: i64| {
        if t_max == t_min {
            L + (W - L - R) / 2.0
        } else {
            L + (t - t_min) as f64 / span * (W - L - R)
        }
    };
    let y = |v: f64| T + (1.0 - v / y_max) * (H - T - B);
    // Grid and y labels.
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let _ = write!(
            svg,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e5e8ee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            y(v),
            y(v),
            L - 6.0,
            y(v) + 4.0,
            if step < 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        );
        v += step;
    }
    let _ = write!(
        svg,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">MiB/s</text>",
        T + (H - T - B) / 2.0
    );
    // Axis and time labels: start and end (and the middle when they differ).
    let _ = write!(
        svg,
        "<line x1=\"{L}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9aa3b2\"/>",
        W - R,
        H - B,
        H - B
    );
    let mut ticks = vec![t_min];
    if t_max > t_min {
        ticks.push(t_min + (t_max - t_min) / 2);
        ticks.push(t_max);
    }
    for (i, t) in ticks.iter().enumerate() {
        let anchor = match (i, ticks.len()) {
            (_, 1) => "middle",
            (0, _) => "start",
            (i, n) if i == n - 1 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            x(*t),
            H - B + 16.0,
            esc(&chrono::DateTime::from_timestamp(*t, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d %H:%M")
                .to_string())
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">sync start (UTC)</text>",
        L + (W - L - R) / 2.0,
        H - 6.0
    );
    for s in &points {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"#2f6fdb\" fill-opacity=\"0.75\" stroke=\"#1d4fa8\"><title>{} {}: {} in {} ({})</title></circle>",
            x(s.started_unix),
            y(mib(s)),
            esc(&s.email),
            esc(&s.started),
            human_bytes(s.bytes),
            human_duration(s.duration_seconds.unwrap_or(0)),
            human_rate(s.bytes_per_second)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one per skip reason.
fn reasons_svg(reasons: &BTreeMap<String, u64>) -> String {
    const W: f64 = 640.0;
    const LABEL: f64 = 150.0;
    const BAR: f64 = 26.0;
    const GAP: f64 = 10.0;
    let h = (reasons.len().max(1) as f64) * (BAR + GAP) + 20.0;
    let mut svg = format!(
        "<svg id=\"reasons\" viewBox=\"0 0 {W} {h}\" width=\"100%\" role=\"img\" aria-label=\"Skipped items by reason\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    if reasons.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No message was skipped.</text></svg>",
            W / 2.0,
            h / 2.0
        );
        return svg;
    }
    let max = reasons.values().copied().max().unwrap_or(1).max(1) as f64;
    let colors = ["#d97706", "#2f6fdb", "#7c3aed", "#c73a3a", "#2f855a"];
    let mut sorted: Vec<(&String, &u64)> = reasons.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (i, (reason, n)) in sorted.iter().enumerate() {
        let top = 10.0 + i as f64 * (BAR + GAP);
        let width = ((W - LABEL - 70.0) * (**n as f64) / max).max(2.0);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{BAR}\" rx=\"3\" fill=\"{}\"><title>{} {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LABEL - 8.0,
            top + BAR / 2.0 + 4.0,
            esc(reason),
            colors[i % colors.len()],
            n,
            esc(reason),
            LABEL + width + 6.0,
            top + BAR / 2.0 + 4.0,
            n
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
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
            copied: 2,
            bytes: 2048,
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
                syncs: vec![sync],
            }],
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
    fn html_escapes_what_senders_wrote_and_loads_nothing() {
        let html = render_html(&sample());
        assert!(!html.contains("<script>alert"), "subject not escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("default-src 'none'"));
        for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(!html.contains(external), "{external}");
        }
        assert!(html.contains("<svg id=\"throughput\"") && html.contains("<circle"));
        assert!(html.contains("<svg id=\"reasons\"") && html.contains("<rect"));
    }

    #[test]
    fn csv_is_excel_friendly_and_defuses_formulas() {
        let (users, syncs, items) = render_csv(&sample()).unwrap();
        for f in [&users, &syncs, &items] {
            assert!(f.starts_with(b"\xEF\xBB\xBF"), "BOM");
        }
        let users = String::from_utf8(users).unwrap();
        assert!(users.contains("skipped_too_large"));
        assert!(users.contains("2023-11-14 22:13:20"), "{users}");
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
    }

    #[test]
    fn durations_and_steps_read_well() {
        assert_eq!(human_duration(0), "<1s");
        assert_eq!(human_duration(65), "1m 05s");
        assert_eq!(human_duration(3723), "1h 02m 03s");
        assert_eq!(nice_step(9.0, 5.0), 2.0);
        assert_eq!(nice_step(0.3, 5.0), 0.1);
    }
}
