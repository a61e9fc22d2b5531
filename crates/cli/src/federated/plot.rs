//! The accuracy curves as a small SVG line chart.

use super::Run;
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 420.0;
const PAD: f64 = 50.0;
const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf",
    "#bcbd22",
];

pub fn svg(runs: &[Run]) -> String {
    let rounds = runs.iter().map(|r| r.accuracy.len()).max().unwrap_or(1).max(2) - 1;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / rounds as f64;
    let y = |acc: f64| H - PAD - (H - 2.0 * PAD) * acc.clamp(0.0, 1.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    for pct in [0, 25, 50, 75, 100] {
        let yy = y(f64::from(pct) / 100.0);
        let _ = write!(
            s,
            r##"<line x1="{PAD}" y1="{yy}" x2="{}" y2="{yy}" stroke="#ddd"/><text x="8" y="{}">{pct} %</text>"##,
            W - PAD,
            yy + 4.0
        );
    }
    let _ = write!(s, r#"<text x="{}" y="{}">round</text>"#, W / 2.0, H - 12.0);
    for (k, r) in runs.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> =
            r.accuracy.iter().enumerate().map(|(i, a)| format!("{:.1},{:.1}", x(i), y(*a))).collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" fill="{colour}">{} / {}</text>"#,
            PAD + 10.0,
            PAD + 16.0 * k as f64,
            r.rule,
            r.attack
        );
    }
    s.push_str("</svg>\n");
    s
}
