//! Latency percentile plots, the way HdrHistogram draws them (Tene, "How NOT to measure
//! latency"): the x axis counts nines (50%, 90%, 99%, 99.9%, … max), the y axis is the latency
//! on a log scale, one line per cell. A mean hides a tail; this picture shows it.

use std::fmt::Write;

use super::{format_seconds, legend_entry, xml_escape, PALETTE};
use crate::experiment::{Latency, RunResult};

/// Where a percentile sits on the x axis: its number of nines, log10(1 / (1 − p)); the maximum
/// one step past 99.99%.
fn nines(percent: f64) -> f64 {
    if percent >= 100.0 {
        5.0
    } else {
        (100.0 / (100.0 - percent)).log10()
    }
}

/// One chart per latency name the experiment recorded (usually one), in name order.
pub fn latency_svgs(result: &RunResult) -> Vec<String> {
    let mut names: Vec<&str> = result.cells.iter().flat_map(|cell| cell.latencies.keys().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(|name| latency_svg(result, name)).collect()
}

/// The percentile plot of the latencies called `name`.
fn latency_svg(result: &RunResult, name: &str) -> String {
    let series: Vec<(String, &Latency)> = result
        .cells
        .iter()
        .filter_map(|cell| Some((format!("{} · {}", cell.variant, cell.threads), cell.latencies.get(name)?)))
        .collect();
    let values = || series.iter().flat_map(|(_, latency)| latency.percentiles.iter().map(|p| p.nanoseconds));
    // Two ticks of the coarsest clock that measured a line, when a line falls below it: there
    // nothing was resolved, and the chart shows that band.
    let unresolved = series.iter().any(|(_, latency)| latency.percentiles.iter().any(|p| p.below_clock_resolution));
    let floor = if unresolved {
        series.iter().map(|(_, latency)| latency.clock_resolution_ns).fold(0.0, f64::max)
    } else {
        0.0
    };
    // A decade under the floor, so the band has room.
    let lowest = values().chain([floor / 10.0]).filter(|&ns| ns > 0.0).fold(f64::INFINITY, f64::min).min(1e9);
    let highest = values().fold(1.0, f64::max);
    let (low_decade, high_decade) = (lowest.log10().floor(), highest.log10().ceil().max(lowest.log10().floor() + 1.0));
    let (width, height, left, right, top, bottom) = (560.0, 280.0, 64.0, 150.0, 24.0, 40.0);
    let x = |percent: f64| left + nines(percent) / 5.0 * (width - left - right);
    let y = |ns: f64| {
        let decade = ns.max(10f64.powf(low_decade)).log10();
        top + (high_decade - decade) / (high_decade - low_decade) * (height - top - bottom)
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart latency" role="img" font-family="system-ui, sans-serif" font-size="12"><title>{0} by percentile</title><text x="{left}" y="14" font-weight="bold">{0} by percentile</text>"#,
        xml_escape(name)
    );
    let mut decade = low_decade;
    while decade <= high_decade {
        let ns = 10f64.powf(decade);
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - right,
            left - 6.0,
            y(ns) + 4.0,
            format_seconds(ns / 1e9),
            y0 = y(ns)
        );
        decade += 1.0;
    }
    if unresolved {
        // The clock's blind spot, shaded: a line inside it reads "less than this", not a value.
        let _ = write!(
            svg,
            r##"<rect class="clock-resolution" x="{left}" y="{:.1}" width="{}" height="{:.1}" fill="#f2f2f2"><title>below the clock's resolution (two ticks, {}): latencies here were not measured, only known to be shorter</title></rect><text x="{}" y="{:.1}" fill="#777" font-size="11">&lt; {} (clock resolution)</text>"##,
            y(floor),
            width - left - right,
            height - bottom - y(floor),
            format_seconds(floor / 1e9),
            left + 6.0,
            (y(floor) + 13.0).min(height - bottom - 3.0),
            format_seconds(floor / 1e9)
        );
    }
    for (percent, label) in
        [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (100.0, "max")]
    {
        let _ = write!(
            svg,
            r##"<line x1="{x0:.1}" x2="{x0:.1}" y1="{top}" y2="{}" stroke="#eee"/><text x="{x0:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            height - bottom,
            height - bottom + 16.0,
            x0 = x(percent)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">percentile</text><text transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">latency (log scale)</text>"#,
        (left + width - right) / 2.0,
        height - 4.0,
        (top + height - bottom) / 2.0
    );
    for (index, (label, latency)) in series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let points: Vec<String> =
            latency.percentiles.iter().map(|p| format!("{:.1},{:.1}", x(p.percent), y(p.nanoseconds))).collect();
        let summary = [50.0, 99.0, 100.0]
            .iter()
            .filter_map(|&percent| {
                let at = latency.percentiles.iter().find(|p| p.percent == percent)?;
                let reading = if at.below_clock_resolution {
                    format!("< {} (clock resolution)", format_seconds(latency.clock_resolution_ns / 1e9))
                } else {
                    format_seconds(at.nanoseconds / 1e9)
                };
                Some(format!("{} {reading}", if percent == 100.0 { "max".into() } else { format!("p{percent}") }))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            svg,
            r#"<polyline class="latency" data-label="{0}" points="{1}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{0} ({2} measured): {3}</title></polyline>"#,
            xml_escape(label),
            points.join(" "),
            latency.count,
            summary
        );
        legend_entry(&mut svg, width - right, top + 20.0 * index as f64, colour, label);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use conlab_core::stats::LogHistogram;

    #[test]
    fn the_axis_counts_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-12 && (nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 5.0);
    }

    #[test]
    fn a_line_per_cell_that_recorded_the_latency() {
        let mut histogram = LogHistogram::default();
        (1..=1000).for_each(|ns| histogram.record(ns * 1000));
        let latency = Latency::of(&histogram, 20.0).unwrap();
        assert_eq!(latency.count, 1000);
        assert_eq!(latency.at(100.0), Some(1e6), "the maximum is exact");
        let p50 = latency.at(50.0).unwrap();
        assert!((500e3..=500e3 * 1.125).contains(&p50), "p50 within a bucket: {p50}");

        let mut result = super::super::tests::sample();
        assert!(latency_svgs(&result).is_empty(), "no cell measured a latency");
        result.cells[0].latencies.insert("item latency".into(), latency.clone());
        result.cells[1].latencies.insert("item latency".into(), latency);
        let charts = latency_svgs(&result);
        assert_eq!(charts.len(), 1);
        assert_eq!(charts[0].matches(r#"<polyline class="latency""#).count(), 2);
        assert!(
            charts[0].contains("item latency by percentile") && charts[0].contains("1000 measured"),
            "{}",
            charts[0]
        );
        assert!(!charts[0].contains("clock-resolution"), "a 20 ns clock resolves every microsecond latency");
    }

    #[test]
    fn latencies_under_two_clock_ticks_read_as_less_than_the_resolution_never_as_zero() {
        // A browser's 5 µs clock: most waits read 0, a few one tick.
        let mut histogram = LogHistogram::default();
        (0..90).for_each(|_| histogram.record(0));
        (0..10).for_each(|_| histogram.record(5_000));
        let latency = Latency::of(&histogram, 10_000.0).unwrap();
        assert!(latency.percentiles.iter().all(|p| p.below_clock_resolution), "{latency:?}");
        let json = serde_json::to_value(&latency).unwrap();
        assert_eq!(json["percentiles"][3]["below_clock_resolution"], true, "the flag is in the JSON");

        let mut result = super::super::tests::sample();
        result.cells[0].latencies.insert("lock wait".into(), latency);
        let chart = &latency_svgs(&result)[0];
        assert!(
            chart.contains(r#"class="clock-resolution""#) && chart.contains("&lt; 10.0 µs (clock resolution)"),
            "{chart}"
        );
        assert!(chart.contains("p50 < 10.0 µs (clock resolution)") && !chart.contains("p50 0 ns"), "{chart}");
    }
}
