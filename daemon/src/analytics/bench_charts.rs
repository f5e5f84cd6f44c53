//! The CMR benchmark's charts, as its predecessor drew them: overhead, memory and time by sequence length, and
//! the retrieval strategies side by side. Plain SVG written here (a few lines per chart: axes, ticks, one polyline
//! per series, a legend), so they need no font files or drawing library and come out the same on every machine.

use super::bench::{latest, param_u64};
use crate::views::benchmarks::{Bench, Measurement};
use std::fmt::Write as _;

/// The charts a benchmark can have.
pub const CHARTS: [&str; 5] = ["overhead", "memory", "scaling", "strategies", "utilization"];

/// One chart as SVG; `None` when the benchmark measured nothing it would show.
pub fn chart(b: &Bench, name: &str) -> Option<String> {
    match name {
        "overhead" => by_length(
            b,
            "overhead",
            "CMR overhead by sequence length",
            "overhead (%)",
            &[("overhead_percentage", "overhead")],
        ),
        "memory" => by_length(
            b,
            "memory",
            "Peak memory by sequence length",
            "peak memory (MB)",
            &[
                ("peak_memory_baseline", "baseline"),
                ("peak_memory_cmr", "CMR"),
            ],
        ),
        "scaling" => by_length(
            b,
            "overhead",
            "Forward pass time by sequence length",
            "time (ms)",
            &[("baseline_time", "baseline"), ("full_cmr_time", "CMR")],
        ),
        "strategies" => strategies(b),
        "utilization" => utilization(b),
        _ => None,
    }
}

/// Figures of an analysis against sequence length, one series per (figure, batch size); memory in MB and times
/// in ms.
fn by_length(
    b: &Bench,
    analysis: &str,
    title: &str,
    unit: &str,
    figures: &[(&str, &str)],
) -> Option<String> {
    let rows = latest(b, analysis);
    let mut batches: Vec<u64> = rows
        .iter()
        .filter_map(|m| param_u64(m, "batch_size"))
        .collect();
    batches.sort_unstable();
    batches.dedup();
    let scale = |figure: &str| {
        if figure.contains("memory") {
            1e-6
        } else if figure.ends_with("_time") {
            1e3
        } else {
            1.0
        }
    };
    let mut series = Vec::new();
    for &(figure, label) in figures {
        for batch in batches
            .iter()
            .map(Some)
            .chain(batches.is_empty().then_some(None))
        {
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|m| batch.is_none_or(|b| param_u64(m, "batch_size") == Some(*b)))
                .filter_map(|m: &&Measurement| {
                    let x = param_u64(m, "sequence_length")? as f64;
                    let y = *m.values.get(figure)?;
                    y.is_finite().then_some((x, y * scale(figure)))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !pts.is_empty() {
                let name = match batch {
                    Some(bs) if batches.len() > 1 => format!("{label}, batch {bs}"),
                    _ => label.to_string(),
                };
                series.push((name, pts));
            }
        }
    }
    (!series.is_empty()).then(|| svg(title, "sequence length (tokens)", unit, &series, None))
}

/// What the runner used while it ran: its CPU (cores), the host's CPU (%) and the GPUs' utilization (%), by time.
fn utilization(b: &Bench) -> Option<String> {
    let rows: Vec<&Measurement> = b
        .measurements
        .iter()
        .filter(|m| m.analysis == "utilization")
        .collect();
    let at = |m: &Measurement| m.params.get("t").and_then(serde_json::Value::as_f64);
    let series: Vec<(String, Vec<(f64, f64)>)> = [
        ("cpu_cores", "runner CPU (cores)", 1.0),
        ("host_cpu", "host CPU (%)", 100.0),
        ("gpu_util", "GPU utilization (%)", 1.0),
    ]
    .iter()
    .map(|(figure, label, scale)| {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|m| Some((at(m)?, m.values.get(*figure)? * scale)))
            .filter(|p| p.1.is_finite())
            .collect();
        (label.to_string(), pts)
    })
    .filter(|(_, pts)| !pts.is_empty())
    .collect();
    (!series.is_empty()).then(|| {
        svg(
            "Utilization while it ran",
            "time (s)",
            "value",
            &series,
            None,
        )
    })
}

/// Retrieval accuracy and time per strategy.
fn strategies(b: &Bench) -> Option<String> {
    let rows = latest(b, "retrieval");
    let names: Vec<String> = rows
        .iter()
        .filter_map(|m| {
            m.params
                .get("strategy")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .collect();
    if names.is_empty() {
        return None;
    }
    let pts = |figure: &str, scale: f64| -> Vec<(f64, f64)> {
        rows.iter()
            .enumerate()
            .filter_map(|(i, m)| m.values.get(figure).map(|v| (i as f64, v * scale)))
            .filter(|p| p.1.is_finite())
            .collect()
    };
    let series = vec![
        (
            "accuracy (× 100)".to_string(),
            pts("retrieval_accuracy", 100.0),
        ),
        (
            "retrieval time (ms)".to_string(),
            pts("retrieval_time", 1e3),
        ),
    ];
    Some(svg(
        "Retrieval strategies",
        "strategy",
        "value",
        &series,
        Some(&names),
    ))
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// A line chart: axes with five ticks each, one polyline (with points) per series, a legend on the right;
/// `categories` names the x ticks 0, 1, ... instead of numbers.
fn svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    categories: Option<&[String]>,
) -> String {
    let all = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0f64, f64::MIN);
    for &(x, y) in all {
        (x0, x1) = (x0.min(x), x1.max(x));
        (y0, y1) = (y0.min(y), y1.max(y));
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    y1 += (y1 - y0) * 0.05;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>
<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>
"#,
        LEFT + pw / 2.0,
        esc(title),
        TOP + ph,
        LEFT + pw,
        TOP + ph,
        TOP + ph
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let (xv, yv) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py(yv) + 4.0,
            short(yv),
            y = py(yv)
        );
        if categories.is_none() {
            let _ = writeln!(
                o,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                px(xv),
                TOP + ph + 18.0,
                short(xv)
            );
        }
    }
    if let Some(names) = categories {
        for (i, n) in names.iter().enumerate() {
            let _ = writeln!(
                o,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                px(i as f64),
                TOP + ph + 18.0,
                esc(n)
            );
        }
    }
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        LEFT + pw / 2.0,
        H - 12.0,
        esc(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(x, y) in pts {
            let _ = writeln!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                px(x),
                py(y)
            );
        }
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            o,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            W - RIGHT + 12.0,
            W - RIGHT + 32.0,
            W - RIGHT + 38.0,
            ly + 4.0,
            esc(name)
        );
    }
    o.push_str("</svg>\n");
    o
}

/// A tick label: few digits, no trailing zeros.
fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-2) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_series_and_its_labels() {
        let s = svg(
            "T <1>",
            "x",
            "y",
            &[
                ("a".into(), vec![(64.0, 1.0), (128.0, 2.0), (256.0, 4.0)]),
                ("b".into(), vec![(64.0, 0.5)]),
            ],
            None,
        );
        assert!(s.starts_with("<svg"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<circle").count(), 4);
        assert!(s.contains("T &lt;1&gt;"));
        assert!(s.contains(">256<"), "{s}");
        assert_eq!(short(0.00012), "1.20e-4");
        assert_eq!(short(12.5), "12.5");
    }
}
