//! Small, dependency-free SVG charts for the static pages: a line chart over months with
//! reference lines, and a bar chart with confidence intervals. Missing (suppressed) values are
//! drawn as gaps with a visible "suppressed" mark, never as zero.

use std::fmt::Write;

/// Escapes text for HTML/SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const PALETTE: [&str; 10] =
    ["#005eb8", "#da291c", "#009639", "#ed8b00", "#7c2855", "#00a499", "#330072", "#768692", "#ae2573", "#41b6e6"];

/// A named series of optional values, one per x label.
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A horizontal reference line (e.g. the operational standard).
pub struct Reference {
    pub label: String,
    pub value: f64,
}

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;

fn y_of(v: f64, lo: f64, hi: f64) -> f64 {
    TOP + (H - TOP - BOTTOM) * (1.0 - (v - lo) / (hi - lo).max(1e-12))
}

/// Opens a captioned chart figure and draws its y axis from `lo` to `hi`.
fn figure_with_axes(title: &str, lo: f64, hi: f64, percent: bool) -> String {
    let mut out = format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(title),
        escape(title)
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let y = y_of(v, lo, hi);
        let label = if percent { format!("{:.0}%", v * 100.0) } else { format!("{v:.0}") };
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e8edee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#425563">{label}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    out
}

/// A line chart: x labels, series, reference lines; values as proportions when `percent`.
pub fn line_chart(
    title: &str,
    x_labels: &[String],
    series: &[Series],
    references: &[Reference],
    percent: bool,
) -> String {
    let values = series.iter().flat_map(|s| s.values.iter().flatten()).chain(references.iter().map(|r| &r.value));
    let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(0.01);
    let (lo, hi) = ((lo - pad).max(0.0), if percent { (hi + pad).min(1.0) } else { hi + pad });
    let mut out = figure_with_axes(title, lo, hi, percent);
    let n = x_labels.len().max(1);
    let x_of = |i: usize| LEFT + (W - LEFT - RIGHT) * (i as f64 + 0.5) / n as f64;
    for (i, label) in x_labels.iter().enumerate() {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#425563">{}</text>"##,
            x_of(i),
            H - BOTTOM + 16.0,
            escape(label)
        );
    }
    reference_lines(&mut out, references, lo, hi);
    for (k, s) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x_of(i), y_of(*v, lo, hi));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            out,
            r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"><title>{}</title></path>"#,
            escape(&s.name)
        );
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                let _ =
                    write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, x_of(i), y_of(*v, lo, hi));
            }
        }
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#231f20">{}</text>"##,
            W - RIGHT + 6.0,
            TOP + 40.0 + 16.0 * k as f64,
            W - RIGHT + 20.0,
            TOP + 49.0 + 16.0 * k as f64,
            escape(&s.name)
        );
    }
    out.push_str("</svg></figure>");
    out
}

/// One bar: label, value and interval (None = suppressed).
pub struct Bar {
    pub label: String,
    pub value: Option<(f64, f64, f64)>,
}

/// A bar chart of proportions with 95% intervals and reference lines.
pub fn bar_chart(title: &str, bars: &[Bar], references: &[Reference]) -> String {
    let hi = bars
        .iter()
        .filter_map(|b| b.value.map(|v| v.2))
        .chain(references.iter().map(|r| r.value))
        .fold(0.0f64, f64::max);
    let (lo, hi) = (0.0, (hi * 1.1).clamp(0.05, 1.0));
    let mut out = figure_with_axes(title, lo, hi, true);
    let n = bars.len().max(1);
    let slot = (W - LEFT - RIGHT) / n as f64;
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let width = slot * 0.6;
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#425563">{}</text>"##,
            x + width / 2.0,
            H - BOTTOM + 16.0,
            escape(&b.label)
        );
        match b.value {
            Some((v, l, u)) => {
                let (y, base) = (y_of(v, lo, hi), y_of(0.0, lo, hi));
                let (yl, yu) = (y_of(l, lo, hi), y_of(u, lo, hi));
                let mid = x + width / 2.0;
                let _ = write!(
                    out,
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{:.1}" fill="#41b6e6"><title>{}: {:.1}% (95% CI {:.1}–{:.1}%)</title></rect><line x1="{mid:.1}" y1="{yl:.1}" x2="{mid:.1}" y2="{yu:.1}" stroke="#231f20"/><line x1="{:.1}" y1="{yl:.1}" x2="{:.1}" y2="{yl:.1}" stroke="#231f20"/><line x1="{:.1}" y1="{yu:.1}" x2="{:.1}" y2="{yu:.1}" stroke="#231f20"/>"##,
                    (base - y).max(0.0),
                    escape(&b.label),
                    v * 100.0,
                    l * 100.0,
                    u * 100.0,
                    mid - 5.0,
                    mid + 5.0,
                    mid - 5.0,
                    mid + 5.0
                );
            }
            None => {
                let _ = write!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#768692" class="suppressed">suppressed</text>"##,
                    x + width / 2.0,
                    y_of(0.0, lo, hi) - 6.0
                );
            }
        }
    }
    reference_lines(&mut out, references, lo, hi);
    out.push_str("</svg></figure>");
    out
}

/// Dashed horizontal lines across the plot, labelled just above their left end.
fn reference_lines(out: &mut String, references: &[Reference], lo: f64, hi: f64) {
    for r in references {
        let y = y_of(r.value, lo, hi);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#231f20" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#231f20">{}</text>"##,
            W - RIGHT,
            LEFT + 4.0,
            y - 4.0,
            escape(&r.label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_suppression_are_visible_not_zero() {
        let chart = line_chart(
            "t",
            &["Jan".into(), "Feb".into(), "Mar".into()],
            &[Series { name: "A & B".into(), values: vec![Some(0.7), None, Some(0.8)] }],
            &[Reference { label: "75% standard".into(), value: 0.75 }],
            true,
        );
        assert_eq!(chart.matches(" M").count() + chart.matches("\"M").count(), 2, "the line is broken at the gap");
        assert!(chart.contains("A &amp; B") && chart.contains("75% standard"));
        let bars = bar_chart(
            "b",
            &[Bar { label: "Q1".into(), value: None }, Bar { label: "Q2".into(), value: Some((0.5, 0.4, 0.6)) }],
            &[],
        );
        assert!(bars.contains("suppressed") && bars.contains("95% CI 40.0–60.0%"));
    }
}
