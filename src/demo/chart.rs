//! The chart: orders submitted per simulated minute, stacked by the status each ended in, as a
//! self-contained SVG written by hand (no plotting dependency; any browser opens it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;

/// Statuses in stacking order (bottom first) with their colours; others go on top in grey.
const PALETTE: [(&str, &str); 11] = [
    ("CLOSED", "#2e7d32"),
    ("COMPENSATED", "#66bb6a"),
    ("RECEIVED", "#9ccc65"),
    ("TIMED_OUT", "#ffa726"),
    ("DELIVERING", "#29b6f6"),
    ("NOTIFIED", "#5c6bc0"),
    ("PAID", "#7e57c2"),
    ("CREATED", "#bdbdbd"),
    ("CREATING", "#e0e0e0"),
    ("CANCELLED", "#ef5350"),
    ("FAILED", "#8d6e63"),
];

/// `per_minute[m]` = orders submitted in minute `m`, by final status.
pub fn svg(title: &str, per_minute: &[BTreeMap<String, u64>]) -> String {
    let minutes = per_minute.len().max(1);
    let peak = per_minute
        .iter()
        .map(|m| m.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let y_max = nice_ceiling(peak);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / minutes as f64;
    let y = |v: f64| TOP + plot_h - v / y_max as f64 * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Horizontal grid and y labels: five steps.
    for k in 0..=5 {
        let v = y_max as f64 * k as f64 / 5.0;
        let yy = y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            v.round()
        );
    }
    // Bars.
    for (m, counts) in per_minute.iter().enumerate() {
        let x = LEFT + m as f64 * bar_w;
        let mut base = 0.0;
        for (status, colour) in stacking(counts) {
            let n = counts.get(status).copied().unwrap_or(0) as f64;
            if n == 0.0 {
                continue;
            }
            let (top, bottom) = (y(base + n), y(base));
            let _ = writeln!(
                out,
                r#"<rect x="{x:.2}" y="{top:.2}" width="{:.2}" height="{:.2}" fill="{colour}"><title>minute {m}: {n} {status}</title></rect>"#,
                (bar_w - 1.0).max(0.5),
                bottom - top
            );
            base += n;
        }
    }
    // Axes and x labels every 10 minutes.
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#424242"/>"##,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    for m in (0..=minutes).step_by(10) {
        let x = LEFT + m as f64 * bar_w;
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{m}</text>"#,
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">simulated minute of submission</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0
    );
    // Legend.
    let present: Vec<(&str, &str)> = PALETTE
        .iter()
        .copied()
        .filter(|(s, _)| per_minute.iter().any(|m| m.contains_key(*s)))
        .collect();
    for (k, (status, colour)) in present.iter().enumerate() {
        let ly = TOP + k as f64 * 20.0;
        let lx = WIDTH - RIGHT + 16.0;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{status}</text>"#,
            lx + 18.0,
            ly + 10.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The statuses of one minute in stacking order: the palette's, then any other.
fn stacking(counts: &BTreeMap<String, u64>) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = PALETTE.to_vec();
    for status in counts.keys() {
        if !PALETTE.iter().any(|(s, _)| s == status) {
            out.push((status.as_str(), "#9e9e9e"));
        }
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `n`.
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if step * m >= n {
                return step * m;
            }
        }
        step *= 10;
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_segment_per_status_and_minute_and_a_legend() {
        let minute = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
        };
        let data = vec![
            minute(&[("CLOSED", 10), ("FAILED", 2)]),
            minute(&[]),
            minute(&[("CLOSED", 7), ("CANCELLED", 1)]),
        ];
        let svg = svg("orders <per> minute", &data);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(svg.contains("minute 0: 10 CLOSED"));
        assert!(svg.contains("orders &lt;per&gt; minute"));
        assert!(svg.contains(">CANCELLED</text>"), "legend");
    }

    #[test]
    fn axis_ceilings_are_round() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(180), 200);
        assert_eq!(nice_ceiling(501), 1_000);
    }
}
