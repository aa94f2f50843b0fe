//! The inline SVG charts of the HTML report: throughput per sync and skip
//! reasons. Drawn by hand as SVG text, so the page needs no script library
//! and loads nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::html::{esc, human_rate};
use super::{Report, SyncReport, human_duration};
use crate::progress::human_bytes;

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
pub(super) fn throughput_svg(report: &Report) -> String {
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
        .filter(|s| s.bytes_per_second.is_some() && s.counts.copied > 0)
        .collect();
    let mut svg = svg_start("throughput", "Throughput per sync", W, H);
    if points.is_empty() {
        return svg_empty(svg, W, H, "No sync has copied anything yet.");
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
            human_bytes(s.counts.bytes),
            human_duration(s.duration_seconds.unwrap_or(0)),
            human_rate(s.bytes_per_second)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one per skip reason.
pub(super) fn reasons_svg(reasons: &BTreeMap<String, u64>) -> String {
    const W: f64 = 640.0;
    const LABEL: f64 = 150.0;
    const BAR: f64 = 26.0;
    const GAP: f64 = 10.0;
    let h = (reasons.len().max(1) as f64) * (BAR + GAP) + 20.0;
    let mut svg = svg_start("reasons", "Skipped items by reason", W, h);
    if reasons.is_empty() {
        return svg_empty(svg, W, h, "No message was skipped.");
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

/// Opens a chart: an `<svg>` of `w` by `h` that scales to the page's width,
/// named `label` for screen readers.
fn svg_start(id: &str, label: &str, w: f64, h: f64) -> String {
    format!(
        "<svg id=\"{id}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\">"
    )
}

/// Closes a chart that has nothing to show, with `message` in its middle.
fn svg_empty(mut svg: String, w: f64, h: f64, message: &str) -> String {
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{message}</text></svg>",
        w / 2.0,
        h / 2.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_steps_read_well() {
        assert_eq!(human_duration(0), "<1s");
        assert_eq!(human_duration(65), "1m 05s");
        assert_eq!(human_duration(3723), "1h 02m 03s");
        assert_eq!(nice_step(9.0, 5.0), 2.0);
        assert_eq!(nice_step(0.3, 5.0), 0.1);
    }
}
