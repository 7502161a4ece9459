//! Curves: y against x, one line per cell — latency against offered load (the hockey stick),
//! throughput over a run's seconds. Each point is the median over the cell's runs, with the
//! runs' range as a whisker; marks (a predicted saturation point) are dashed vertical lines in
//! their cell's colour.

use std::fmt::Write;

use super::{format_metric, legend_entry, tick_step, xml_escape, PALETTE};
use crate::experiment::{Curve, RunResult};

/// The curves' names, in the order the cells first recorded them.
fn curve_names(result: &RunResult) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for name in result.cells.iter().flat_map(|cell| cell.curves.keys()) {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names
}

/// Each cell's curve called `name`, labelled by its variant (and threads, when the variant
/// sweeps them).
fn lines<'r>(result: &'r RunResult, name: &str) -> Vec<(String, &'r Curve)> {
    result
        .cells
        .iter()
        .filter_map(|cell| {
            let curve = cell.curves.get(name)?;
            let sweeps = result.cells.iter().filter(|other| other.variant == cell.variant).count() > 1;
            let label = if sweeps { format!("{} · {}", cell.variant, cell.threads) } else { cell.variant.clone() };
            Some((label, curve))
        })
        .collect()
}

/// One chart per curve the experiment recorded.
pub fn curve_svgs(result: &RunResult) -> Vec<String> {
    curve_names(result).into_iter().map(|name| curve_svg(name, &lines(result, name))).collect()
}

/// The curves as text, for the terminal: a line per cell, `x → y` pairs.
pub fn curve_lines(result: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    for name in curve_names(result) {
        let lines = lines(result, name);
        let Some((_, first)) = lines.first() else { continue };
        out.push(format!("{name}: {} against {}", first.y, first.x));
        for (label, curve) in &lines {
            let points: Vec<String> = curve
                .points
                .iter()
                .map(|point| format!("{} → {}", format_metric(point.x), format_metric(point.median)))
                .collect();
            let marks: Vec<String> =
                curve.marks.iter().map(|mark| format!("{} at {}", mark.label, format_metric(mark.x))).collect();
            let marks = if marks.is_empty() { String::new() } else { format!(" ({})", marks.join(", ")) };
            out.push(format!("  {label}: {}{marks}", points.join(", ")));
        }
    }
    out
}

fn curve_svg(name: &str, lines: &[(String, &Curve)]) -> String {
    let (x_label, y_label, log_x, log_y) =
        lines.first().map_or(("", "", false, false), |(_, c)| (c.x.as_str(), c.y.as_str(), c.log_x, c.log_y));
    let xs = || lines.iter().flat_map(|(_, c)| c.points.iter().map(|p| p.x).chain(c.marks.iter().map(|m| m.x)));
    let ys = || lines.iter().flat_map(|(_, c)| c.points.iter().flat_map(|p| [p.min, p.max]));
    let x_max = xs().fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.05;
    let x_low = xs().filter(|&x| x > 0.0).fold(x_max, f64::min);
    let (x_first, x_last) = (x_low.log10().floor(), x_max.log10().ceil().max(x_low.log10().floor() + 1.0));
    let y_high = ys().fold(f64::MIN_POSITIVE, f64::max);
    let y_low = ys().filter(|&y| y > 0.0).fold(y_high, f64::min);
    let y_step = tick_step(y_high);
    let (low, high) = if log_y {
        (y_low.log10().floor(), y_high.log10().ceil().max(y_low.log10().floor() + 1.0))
    } else {
        (0.0, (y_high / y_step).ceil() * y_step)
    };
    let (width, height, left, right, top, bottom) = (600.0, 280.0, 64.0, 200.0, 24.0, 40.0);
    let x = |value: f64| {
        let scaled =
            if log_x { (value.max(10f64.powf(x_first)).log10() - x_first) / (x_last - x_first) } else { value / x_max };
        left + scaled * (width - left - right)
    };
    let y = |value: f64| {
        let scaled = if log_y { (value.max(10f64.powf(low)).log10() - low) / (high - low) } else { value / high };
        height - bottom - scaled * (height - top - bottom)
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart curve" role="img" font-family="system-ui, sans-serif" font-size="12"><title>{0}</title><text x="{left}" y="14" font-weight="bold">{0}</text>"#,
        xml_escape(name)
    );
    let ticks: Vec<f64> = if log_y {
        (low as i32..=high as i32).map(|decade| 10f64.powi(decade)).collect()
    } else {
        (0..=(high / y_step).round() as i32).map(|step| y_step * f64::from(step)).collect()
    };
    for tick in ticks {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - right,
            left - 6.0,
            y(tick) + 4.0,
            format_metric(tick),
            y0 = y(tick)
        );
    }
    let x_step = tick_step(x_max / 1.05);
    let x_ticks: Vec<f64> = if log_x {
        (x_first as i32..=x_last as i32).map(|decade| 10f64.powi(decade)).collect()
    } else {
        (0..=((x_max / x_step).floor() as i32)).map(|step| x_step * f64::from(step)).collect()
    };
    for value in x_ticks {
        let _ = write!(
            svg,
            r##"<line x1="{x0:.1}" x2="{x0:.1}" y1="{top}" y2="{}" stroke="#eee"/><text x="{x0:.1}" y="{}" text-anchor="middle">{}</text>"##,
            height - bottom,
            height - bottom + 16.0,
            format_metric(value),
            x0 = x(value)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}{}</text><text transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">{}{}</text>"#,
        (left + width - right) / 2.0,
        height - 4.0,
        xml_escape(x_label),
        if log_x { " (log scale)" } else { "" },
        (top + height - bottom) / 2.0,
        xml_escape(y_label),
        if log_y { " (log scale)" } else { "" }
    );
    for (index, (label, curve)) in lines.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let points: Vec<String> = curve.points.iter().map(|p| format!("{:.1},{:.1}", x(p.x), y(p.median))).collect();
        let _ = write!(
            svg,
            r#"<polyline class="curve" data-label="{0}" points="{1}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{0}</title></polyline>"#,
            xml_escape(label),
            points.join(" ")
        );
        for point in &curve.points {
            let _ = write!(
                svg,
                r#"<line x1="{x0:.1}" x2="{x0:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}"/><circle cx="{x0:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{}: {} at {} (runs {} – {})</title></circle>"#,
                y(point.min),
                y(point.max),
                y(point.median),
                xml_escape(label),
                format_metric(point.median),
                format_metric(point.x),
                format_metric(point.min),
                format_metric(point.max),
                x0 = x(point.x)
            );
        }
        for mark in &curve.marks {
            let _ = write!(
                svg,
                r#"<line class="mark" x1="{x0:.1}" x2="{x0:.1}" y1="{top}" y2="{}" stroke="{colour}" stroke-dasharray="4 3"><title>{}: {} at {}</title></line>"#,
                height - bottom,
                xml_escape(label),
                xml_escape(&mark.label),
                format_metric(mark.x),
                x0 = x(mark.x)
            );
        }
        legend_entry(&mut svg, width - right, top + 20.0 * index as f64, colour, label);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{CurveMark, CurvePoint};

    fn curve(points: &[(f64, f64)]) -> Curve {
        Curve {
            x: "offered load (requests/s)".into(),
            y: "p99 latency (ms)".into(),
            log_x: false,
            log_y: true,
            points: points.iter().map(|&(x, y)| CurvePoint { x, median: y, min: y * 0.9, max: y * 1.1 }).collect(),
            marks: vec![CurveMark { label: "predicted saturation".into(), x: 900.0 }],
        }
    }

    #[test]
    fn a_line_per_cell_with_its_points_and_marks_and_the_same_in_text() {
        let mut result = super::super::tests::sample();
        assert!(curve_svgs(&result).is_empty() && curve_lines(&result).is_empty());
        result.cells[0].curves.insert("hockey stick".into(), curve(&[(250.0, 1.2), (500.0, 1.4), (1000.0, 80.0)]));
        result.cells[1].curves.insert("hockey stick".into(), curve(&[(250.0, 1.1), (500.0, 1.3)]));
        let charts = curve_svgs(&result);
        assert_eq!(charts.len(), 1);
        assert_eq!(charts[0].matches(r#"<polyline class="curve""#).count(), 2);
        assert_eq!(charts[0].matches("<circle").count(), 5);
        assert_eq!(charts[0].matches(r#"class="mark""#).count(), 2);
        assert!(charts[0].contains("(log scale)") && charts[0].contains("offered load (requests/s)"));
        let text = curve_lines(&result);
        assert_eq!(text[0], "hockey stick: p99 latency (ms) against offered load (requests/s)");
        assert!(text[1].contains("250 → 1.20, 500 → 1.40, 1.00 k → 80.0 (predicted saturation at 900)"), "{text:?}");
    }
}
