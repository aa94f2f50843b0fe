//! The HTML rendering: one self-contained page (inline CSS, a few lines of
//! JS to sort the tables, inline SVG charts) that loads nothing from
//! anywhere, so it can be mailed around; everything senders or users wrote
//! is escaped.

use std::fmt::Write as _;

use super::charts::{reasons_svg, throughput_svg};
use super::{PimFigures, PimProblem, Report, human_duration};
use crate::checkpoint::ProblemItem;
use crate::progress::human_bytes;

/// At most this many skipped, failed or converted messages are listed in the HTML
/// page (failed ones first); CSV and JSON always list all of them. A
/// mailbox over its item cap can skip hundreds of thousands of messages,
/// which no browser table survives.
pub const HTML_ITEM_LIMIT: usize = 5000;

/// The words under a contacts or events card.
fn pim_summary(f: &PimFigures) -> String {
    format!(
        "{} failed, {} written with notes; deleted on the source: {} kept in the target, {} deleted from it",
        f.failed, f.with_notes, f.deleted_on_source_kept, f.deleted
    )
}

/// A user's contacts or events cells, in the order of the contacts and
/// calendars table: written, failed, deleted kept, deleted mirrored, with
/// notes; a dash for each when it has none of that kind.
fn pim_cells(out: &mut String, figures: Option<&PimFigures>) {
    match figures {
        Some(f) => {
            for n in [f.written, f.failed, f.deleted_on_source_kept, f.deleted, f.with_notes] {
                let _ = write!(out, "<td class=\"n\">{n}</td>");
            }
        }
        None => out.push_str(&"<td class=\"n\" data-v=\"-1\">–</td>".repeat(5)),
    }
}

/// A list of contacts or events (failed ones, or those written with
/// notes), at most [`HTML_ITEM_LIMIT`] of them; `with_state` adds the
/// column telling a failure with no copy from one that left the earlier
/// copy in place.
fn pim_table(out: &mut String, id: &str, title: &str, what: &str, last: &str, with_state: bool, list: &[&PimProblem]) {
    let _ = write!(
        out,
        "<h2>{}</h2>\n<p class=\"muted\">{} {what}{}.</p>\n",
        esc(title),
        list.len(),
        if list.len() > HTML_ITEM_LIMIT {
            format!("; the first {HTML_ITEM_LIMIT} are listed here, all of them are in the CSV and JSON reports")
        } else {
            String::new()
        }
    );
    if list.is_empty() {
        return;
    }
    let mut columns = vec![("User", false), ("Kind", false), ("Collection", false), ("UID", false)];
    if with_state {
        columns.push(("State", false));
    }
    columns.push((last, false));
    table_head(out, id, &columns);
    for p in list.iter().take(HTML_ITEM_LIMIT) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&p.email),
            esc(&p.kind),
            esc(&p.collection),
            esc(&p.uid),
        );
        if with_state {
            out.push_str(&format!("<td>{}</td>", state_badge(&p.state)));
        }
        let _ = writeln!(out, "<td class=\"err\">{}</td></tr>", esc(&p.reason));
    }
    out.push_str("</tbody></table></div>\n");
}

/// At most this many syncs are listed one by one in the HTML page (the
/// newest, when there are more); the passes table sums all of them, and
/// CSV and JSON list all of them. Thousands of users synced a few times
/// each would make a table no one reads.
pub const HTML_SYNC_LIMIT: usize = 5000;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    escape_html(s, true)
}

/// Escapes `&`, `<`, `>` and `"` for HTML content and double-quoted
/// attribute values, and `'` as well when `apostrophe` is set.
pub fn escape_html(s: &str, apostrophe: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' if apostrophe => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "2026-01-02 03:04:05" from the RFC 3339 form (still sorts as text).
fn html_time(t: &str) -> String {
    esc(t.trim_end_matches('Z').replacen('T', " ", 1).as_str())
}

pub(super) fn human_rate(bytes_per_second: Option<f64>) -> String {
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

/// Opens a sortable table: its headings (numeric columns sort as numbers
/// and align right) and the start of its body.
fn table_head(out: &mut String, id: &str, columns: &[(&str, bool)]) {
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"sortable\" id=\"{id}\"><thead><tr>"
    );
    for &(name, numeric) in columns {
        let _ = write!(
            out,
            "<th{}>{}</th>",
            if numeric { " data-type=\"num\" class=\"n\"" } else { "" },
            esc(name)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
}

fn state_badge(state: &str) -> String {
    let class: String = state.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("<span class=\"state {class}\">{}</span>", esc(state))
}

/// The page: summary, sortable users table (and contacts and calendars
/// per user, when any), charts, sync passes, syncs, items (and the
/// contacts and events that failed or were written with notes).
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
        "Deleted on source",
        &t.deleted_on_source.to_string(),
        "copies kept in the target; migrate --mirror-deletions removes them",
    );
    let mut changed = crate::checkpoint::SyncCounts::default();
    for p in &report.passes {
        changed.add(&p.counts);
    }
    card(
        &mut out,
        "Resync changes",
        &(changed.moved + changed.flags_updated + changed.renamed).to_string(),
        &format!(
            "{} moved, {} flag updates, {} folders renamed; {} deleted on the source were deleted from the target",
            changed.moved, changed.flags_updated, changed.renamed, changed.deleted_mirrored
        ),
    );
    // Contacts and events, for the migrations that copy them.
    if let Some(c) = &t.contacts {
        card(&mut out, "Contacts written", &c.written.to_string(), &pim_summary(c));
    }
    if let Some(e) = &t.events {
        card(&mut out, "Events written", &e.written.to_string(), &pim_summary(e));
    }
    card(
        &mut out,
        "Throughput",
        &human_rate(t.bytes_per_second),
        &format!("{} syncs, {} in total", t.syncs, human_duration(t.sync_seconds)),
    );
    out.push_str("</section>\n");

    // Users.
    out.push_str("<h2>Users</h2><p class=\"muted\">Click a column heading to sort.</p>\n");
    table_head(
        &mut out,
        "users",
        &[
            ("User", false),
            ("State", false),
            ("Folders", true),
            ("Source items", true),
            ("Copied", true),
            ("Skipped", true),
            ("Failed", true),
            ("Moved", true),
            ("Flags updated", true),
            ("Renamed", true),
            ("Deleted on source", true),
            ("Source size", true),
            ("Copied size", true),
            ("Rate", true),
            ("Syncs", true),
            ("First start", false),
            ("Last end", false),
            ("Sync time", true),
            ("Last error", false),
        ],
    );
    for u in &report.users {
        let s = &u.status;
        let skipped_title: Vec<String> = s.skipped_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let c = &u.sync_totals;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\" title=\"{}\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\" data-v=\"{}\" title=\"{} kept in the target, {} deleted from it\">{} kept, {} mirrored</td>\
             <td class=\"n\" data-v=\"{}\">{}</td>\
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
            c.moved,
            c.flags_updated,
            c.renamed,
            s.deleted_on_source + c.deleted_mirrored,
            s.deleted_on_source,
            c.deleted_mirrored,
            s.deleted_on_source,
            c.deleted_mirrored,
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

    // Contacts and calendars: their own table, of the users that have
    // any, so the mail table stays as it is.
    if report.has_pim() {
        out.push_str(
            "<h2>Contacts and calendars</h2>\n<p class=\"muted\">Users with an address book or a calendar. \
             Deleted kept: deleted on the source, copy left in the target; mirrored: deleted from the target too. \
             With notes: written, with what the target could not hold put in the item's notes.</p>\n",
        );
        table_head(
            &mut out,
            "pim",
            &[
                ("User", false),
                ("Contacts written", true),
                ("Contacts failed", true),
                ("Contacts deleted kept", true),
                ("Contacts deleted mirrored", true),
                ("Contacts with notes", true),
                ("Events written", true),
                ("Events failed", true),
                ("Events deleted kept", true),
                ("Events deleted mirrored", true),
                ("Events with notes", true),
            ],
        );
        for u in report
            .users
            .iter()
            .filter(|u| u.contacts.is_some() || u.events.is_some())
        {
            let _ = write!(out, "<tr><td>{}</td>", esc(&u.status.email));
            pim_cells(&mut out, u.contacts.as_ref());
            pim_cells(&mut out, u.events.as_ref());
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table></div>\n");
    }

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

    // Syncs: each pass summed, then the syncs one by one.
    out.push_str(
        "<h2>Sync passes</h2>\n<p class=\"muted\">Pass 1 is every user's first sync, pass 2 every user's second, and so on. \
         Deleted kept: copies of messages found deleted on the source during the pass and left in the target; \
         mirrored: deleted from the target as on the source (<code>--mirror-deletions</code>).</p>\n",
    );
    table_head(
        &mut out,
        "passes",
        &[
            ("Pass", true),
            ("Users", true),
            ("Done", true),
            ("Started", false),
            ("Finished", false),
            ("Copied", true),
            ("Bytes", true),
            ("Moved", true),
            ("Flags updated", true),
            ("Renamed", true),
            ("Deleted kept", true),
            ("Deleted mirrored", true),
        ],
    );
    for p in &report.passes {
        let c = &p.counts;
        let _ = writeln!(
            out,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            p.pass,
            p.users,
            p.done,
            html_time(&p.started),
            p.finished
                .as_deref()
                .map_or_else(|| "not finished".to_owned(), html_time),
            c.copied,
            c.bytes,
            human_bytes(c.bytes),
            c.moved,
            c.flags_updated,
            c.renamed,
            c.deleted_kept,
            c.deleted_mirrored,
        );
    }
    out.push_str("</tbody></table></div>\n");

    let mut syncs: Vec<&super::SyncReport> = report.users.iter().flat_map(|u| &u.syncs).collect();
    let total = syncs.len();
    if total > HTML_SYNC_LIMIT {
        syncs.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
        syncs.truncate(HTML_SYNC_LIMIT);
    }
    let _ = write!(
        out,
        "<h2>Syncs</h2>\n<p class=\"muted\">{total} syncs{}.</p>\n",
        if total > HTML_SYNC_LIMIT {
            format!("; the newest {HTML_SYNC_LIMIT} are listed here, all of them are in the CSV and JSON reports")
        } else {
            String::new()
        }
    );
    table_head(
        &mut out,
        "syncs",
        &[
            ("User", false),
            ("Started", false),
            ("Finished", false),
            ("Duration", true),
            ("State", false),
            ("Copied", true),
            ("Bytes", true),
            ("Rate", true),
            ("Moved", true),
            ("Flags updated", true),
            ("Renamed", true),
            ("Deleted kept", true),
            ("Deleted mirrored", true),
            ("Error", false),
        ],
    );
    for s in syncs {
        let c = &s.counts;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"n\" data-v=\"{}\">{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\" data-v=\"{}\">{}</td><td class=\"n\" data-v=\"{}\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"err\">{}</td></tr>",
            esc(&s.email),
            html_time(&s.started),
            s.finished
                .as_deref()
                .map_or_else(|| "not finished".to_owned(), html_time),
            s.duration_seconds.unwrap_or(0),
            s.duration_seconds.map(human_duration).unwrap_or_else(|| "–".into()),
            state_badge(&s.state),
            c.copied,
            c.bytes,
            human_bytes(c.bytes),
            s.bytes_per_second.unwrap_or(0.0),
            // A resync with nothing new has no meaningful rate.
            human_rate(s.bytes_per_second.filter(|_| c.copied > 0)),
            c.moved,
            c.flags_updated,
            c.renamed,
            c.deleted_kept,
            c.deleted_mirrored,
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
    table_head(
        &mut out,
        "items",
        &[
            ("User", false),
            ("Folder", false),
            ("Date", false),
            ("Subject", false),
            ("Size", true),
            ("State", false),
            ("Reason", false),
        ],
    );
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
    out.push_str("</tbody></table></div>\n");

    // Contacts and events one by one: what to fix, then what was adapted.
    if let Some(list) = &report.pim_items {
        let (written, failed): (Vec<&PimProblem>, Vec<&PimProblem>) = list.iter().partition(|p| p.state == "written");
        pim_table(
            &mut out,
            "pim-failed",
            "Contacts and events that failed",
            "contacts and events not copied as the source has them; the reason says what to fix in the source item",
            "Reason",
            true,
            &failed,
        );
        pim_table(
            &mut out,
            "pim-notes",
            "Contacts and events written with notes",
            "contacts and events written with what the target could not hold put in their notes",
            "Notes",
            false,
            &written,
        );
    }
    out.push_str("</main>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

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

    /// Each pass and each sync shows what it did: copied, moved, flags
    /// updated, folders renamed, deletions kept and mirrored; so does each
    /// user, summed.
    #[test]
    fn html_shows_what_each_pass_and_sync_changed() {
        let html = render_html(&sample());
        let row = |id: &str| {
            let table = &html[html.find(&format!("id=\"{id}\"")).unwrap()..];
            let body = &table[table.find("<tbody>").unwrap()..];
            let cells: Vec<String> = body[..body.find("</tr>").unwrap()]
                .split("<td")
                .skip(1)
                .map(|c| {
                    let text = &c[c.find('>').unwrap() + 1..];
                    text[..text.find("</td>").unwrap()].to_owned()
                })
                .collect();
            cells
        };
        let pass = row("passes");
        assert_eq!(pass[0..3], ["1", "1", "1"], "{pass:?}");
        assert_eq!(pass[5], "2");
        assert_eq!(pass[7..], ["3", "4", "1", "5", "6"], "{pass:?}");
        let sync = row("syncs");
        assert_eq!(sync[5], "2");
        assert_eq!(sync[8..13], ["3", "4", "1", "5", "6"], "{sync:?}");
        let user = row("users");
        assert_eq!(user[7..10], ["3", "4", "1"], "{user:?}");
        assert_eq!(user[10], "0 kept, 6 mirrored");
        assert!(html.contains("3 moved, 4 flag updates, 1 folders renamed"));
    }
}
