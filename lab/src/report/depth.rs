//! Queue depth over time, from the depth marks experiments leave in their traces
//! (`queue-backpressure`: "queue depth N" at every change; `producer-consumer`: "depth N"
//! sampled by the consumers): one line per cell, time from the cell's first span.

use std::fmt::Write;

use super::{format_metric, format_seconds, horizontal_grid, legend_entry, tick_step, xml_escape, PALETTE};
use conlab_core::trace::{CellTrace, SpanKind, Trace};

/// (seconds since the cell's start, depth) for each depth mark of `cell`, in time order.
fn depth_series(cell: &CellTrace) -> Vec<(f64, f64)> {
    let start = cell.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let mut points: Vec<(f64, f64)> = cell
        .spans
        .iter()
        .filter(|span| span.kind == SpanKind::Mark)
        .filter_map(|span| {
            let depth = span.label.strip_prefix("queue depth ").or_else(|| span.label.strip_prefix("depth "))?;
            Some(((span.start_ns - start) as f64 / 1e9, depth.parse::<f64>().ok()?))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// The chart, or `None` when no cell left at least two depth marks.
pub fn depth_svg(trace: &Trace) -> Option<String> {
    let series: Vec<(&CellTrace, Vec<(f64, f64)>)> =
        trace.cells.iter().map(|cell| (cell, depth_series(cell))).filter(|(_, points)| points.len() >= 2).collect();
    if series.is_empty() {
        return None;
    }
    let (width, height, left, right, top, bottom) = (560.0, 260.0, 56.0, 150.0, 16.0, 40.0);
    let last_time =
        series.iter().flat_map(|(_, p)| p.iter().map(|(t, _)| *t)).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let highest = series.iter().flat_map(|(_, p)| p.iter().map(|(_, d)| *d)).fold(0.0, f64::max).max(1.0);
    let step = tick_step(highest);
    let y_max = (highest / step).ceil() * step;
    let x = |t: f64| left + t / last_time * (width - left - right);
    let y = |d: f64| top + (1.0 - d / y_max) * (height - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart depth" role="img" font-family="system-ui, sans-serif" font-size="12"><title>queue depth over time</title>"#
    );
    horizontal_grid(&mut svg, (left, width - right), (y_max, step), y, format_metric);
    let _ = write!(
        svg,
        r#"<text x="{left}" y="{}">0</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{:.1}" y="{}" text-anchor="middle">time in the run</text><text transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">queue depth (items)</text>"#,
        height - bottom + 16.0,
        width - right,
        height - bottom + 16.0,
        format_seconds(last_time),
        (left + width - right) / 2.0,
        height - 6.0,
        (top + height - bottom) / 2.0
    );
    for (index, (cell, points)) in series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        // A step line: the depth holds until the next mark.
        let mut path = Vec::with_capacity(points.len() * 2);
        for (i, (t, d)) in points.iter().enumerate() {
            if i > 0 {
                path.push(format!("{:.1},{:.1}", x(*t), y(points[i - 1].1)));
            }
            path.push(format!("{:.1},{:.1}", x(*t), y(*d)));
        }
        let name = format!("{} · {}", cell.variant, cell.threads);
        let _ = write!(
            svg,
            r#"<polyline class="depth" data-variant="{}" points="{}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{}: max {}</title></polyline>"#,
            xml_escape(&cell.variant),
            path.join(" "),
            xml_escape(&name),
            format_metric(points.iter().map(|(_, d)| *d).fold(0.0, f64::max))
        );
        legend_entry(&mut svg, width - right, top + 20.0 * index as f64, colour, &name);
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conlab_core::trace::Span;

    fn mark(ns: u64, label: &str) -> Span {
        Span { thread: 0, start_ns: ns, end_ns: ns, kind: SpanKind::Mark, label: label.to_string().into() }
    }

    #[test]
    fn depth_marks_become_one_step_line_per_cell() {
        let bounded = CellTrace {
            variant: "bounded".into(),
            threads: 1,
            spans: vec![
                mark(1_000, "queue depth 1"),
                mark(2_000, "queue depth 3"),
                mark(3_000, "submit task 4"),
                mark(4_000, "queue depth 2"),
            ],
        };
        let sampled =
            CellTrace { variant: "ring".into(), threads: 4, spans: vec![mark(0, "depth 0"), mark(5_000, "depth 64")] };
        let silent = CellTrace { variant: "seq".into(), threads: 1, spans: vec![mark(0, "depth 9")] };
        assert_eq!(depth_series(&bounded), [(0.0, 1.0), (1e-6, 3.0), (3e-6, 2.0)]);
        let svg = depth_svg(&Trace { cells: vec![bounded, sampled, silent.clone()] }).unwrap();
        assert_eq!(svg.matches(r#"class="depth""#).count(), 2, "a cell with one mark draws nothing");
        assert!(svg.contains("bounded · 1: max 3.00") && svg.contains("ring · 4: max 64.0"), "{svg}");
        assert!(depth_svg(&Trace { cells: vec![silent] }).is_none());
    }
}
