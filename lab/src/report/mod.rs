//! Renders a [`RunResult`] for people: an aligned text table, CSV, an SVG speedup chart, and
//! (in [`timeline`]) a per-thread timeline of a recorded trace, (in [`depth`]) queue depth
//! over time, (in [`latency`]) latency percentile plots, (in [`curve`]) curves such as latency
//! against offered load, (in [`profile`]) a run's profile from its trace, and (in [`wait_for`]) a
//! deadlock's wait-for graph.
//!
//! Pure string building, shared by the CLI (stdout, files) and the web lab (inserted into the
//! page), so both show the same numbers the same way.

use std::fmt::Write;

use serde::Serialize;

use crate::experiment::{CellResult, Metric, RunResult, ScalingLaw, Verdict, DEFAULT_REPEAT};

pub mod curve;
pub mod depth;
pub mod latency;
pub mod profile;
pub mod timeline;
pub mod wait_for;
pub use curve::{curve_lines, curve_svgs};
pub use depth::depth_svg;
pub use latency::latency_svgs;
pub use profile::{profile_lines, profile_of};
pub use timeline::{timeline_svg, timeline_window_svg, Window};
pub use wait_for::wait_for_svg;

use conlab_core::units::three_digits;
pub use conlab_core::units::{format_rate, format_seconds};

/// A ratio to two decimals; one below 0.1 as a fraction ("1/250×"), which two decimals would
/// print as 0.00.
fn ratio(value: Option<f64>, suffix: &str) -> String {
    match value {
        None => "–".to_string(),
        Some(v) if v > 0.0 && v < 0.095 => format!("1/{:.0}{suffix}", 1.0 / v),
        Some(v) => format!("{v:.2}{suffix}"),
    }
}

/// Names and units of the metrics any cell recorded, in natural order ("9% …" before "10% …").
fn metric_columns(result: &RunResult) -> Vec<(String, String)> {
    let mut columns: Vec<(String, String)> = result
        .cells
        .iter()
        .flat_map(|cell| cell.metrics.iter().map(|(name, metric)| (name.clone(), metric.unit.clone())))
        .collect();
    columns.sort_by_cached_key(|(name, _)| natural_key(name));
    columns.dedup_by(|a, b| a.0 == b.0);
    columns
}

/// A sort key that orders digit runs by their number and the rest as text (digits first, as
/// in ASCII).
fn natural_key(text: &str) -> Vec<(bool, u64, String)> {
    let mut key = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            key.push((false, rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let text_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            key.push((true, 0, rest[..text_len].to_string()));
            rest = &rest[text_len..];
        }
    }
    key
}

/// A metric's median with three significant digits and an SI prefix for large values.
pub fn format_metric(value: f64) -> String {
    if value == 0.0 {
        "0".into()
    } else if value.abs() >= 1e3 {
        format_rate(value)
    } else {
        three_digits(value)
    }
}

/// A metric's median as a person reads it: "< 10.0 µs (clock resolution)" for a time shorter
/// than the clock resolves, never a measured 0.
pub fn metric_text(metric: &Metric) -> String {
    match metric.below_clock_resolution_ns {
        Some(floor) => format!("< {} (clock resolution)", format_seconds(floor / 1e9)),
        None => format_metric(metric.median),
    }
}

/// A result as rows of text: what the CLI prints aligned and the web lab renders as HTML, so
/// both show the same columns and the same formatting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<TableRow>,
}

/// One cell of the result as a table row; `cells` covers every column, variant and threads
/// included.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableRow {
    pub variant: String,
    pub threads: usize,
    pub check: CheckState,
    pub cells: Vec<String>,
}

/// How a cell's correctness check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Ok,
    Wrong,
    Skipped,
    Unchecked,
    None,
}

fn check(cell: &CellResult) -> (CheckState, String) {
    match (&cell.check, &cell.skipped, &cell.unchecked) {
        (_, Some(why), _) => (CheckState::Skipped, format!("skipped: {why}")),
        (_, _, Some(why)) => (CheckState::Unchecked, format!("unchecked: {why}")),
        (Some(check), _, _) if check.passed => (CheckState::Ok, "ok".to_string()),
        (Some(check), _, _) => (CheckState::Wrong, format!("WRONG ({} ≠ {})", check.actual, check.expected)),
        (None, None, None) => (CheckState::None, "–".into()),
    }
}

/// The columns a result shows: timings (with throughput when there is a work unit) unless the
/// runs lasted a set time, then one column per recorded metric, then the check.
pub fn table_data(result: &RunResult) -> Table {
    let metrics = metric_columns(result);
    let timed = !result.fixed_duration;
    let throughput = result.work_unit.as_ref().filter(|_| timed);
    let mut headers = vec!["variant".to_string(), "threads".into()];
    let levels = interval_levels(result);
    if timed {
        let interval = match levels.as_slice() {
            [level] => format!("{} CI of median", percent_level(*level)),
            _ => "CI of median (level)".into(),
        };
        headers.extend(["median".into(), interval, "min".into()]);
        headers.extend(throughput.map(|unit| format!("{unit}/s")));
        headers.extend([format!("vs {}", result.baseline), "vs 1 thread".into(), "efficiency".into()]);
    }
    headers.extend(
        metrics.iter().map(|(name, unit)| if unit.is_empty() { name.clone() } else { format!("{name} ({unit})") }),
    );
    headers.push("check".into());
    let rows = result
        .cells
        .iter()
        .map(|cell| {
            let mut cells = vec![cell.variant.clone(), cell.threads.to_string()];
            if timed {
                cells.extend(timing_cells(cell, throughput.is_some(), levels.len() > 1));
            }
            cells
                .extend(metrics.iter().map(|(name, _)| cell.metrics.get(name).map_or_else(|| "–".into(), metric_text)));
            let (state, text) = check(cell);
            cells.push(text);
            TableRow { variant: cell.variant.clone(), threads: cell.threads, check: state, cells }
        })
        .collect();
    Table { headers, rows }
}

/// Two runs of the same experiment with the same parameters side by side — this browser's and
/// an imported `conlab run --format json` — cell by cell: each side's median and their ratio.
/// Cells only one side ran are listed with a dash. An error says why the runs do not compare.
pub fn comparison(here: &RunResult, there: &RunResult) -> Result<Table, String> {
    if here.experiment != there.experiment {
        return Err(format!("the imported result is of `{}`, this one of `{}`", there.experiment, here.experiment));
    }
    let differing: Vec<String> = here
        .params
        .iter()
        .filter(|(name, value)| !there.params.get(*name).is_some_and(|theirs| theirs.same_as(value)))
        .map(|(name, value)| {
            format!(
                "{name}={value} here, {} there",
                there.params.get(name).map_or_else(|| "unset".into(), |v| v.to_string())
            )
        })
        .collect();
    if !differing.is_empty() {
        return Err(format!("the parameters differ ({}): run the same parameters to compare", differing.join("; ")));
    }
    let label = |result: &RunResult| result.environment.platform.platform.clone();
    let (left, right) = (label(here), label(there));
    let headers = vec![
        "variant".into(),
        "threads".into(),
        format!("{left} median"),
        format!("{right} median"),
        format!("{left} / {right}"),
    ];
    let median = |cell: Option<&CellResult>| cell.and_then(|c| c.summary.as_ref()).map(|s| s.median);
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for key in here.cells.iter().chain(&there.cells).map(|c| (c.variant.as_str(), c.threads)) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let rows = keys
        .into_iter()
        .map(|(variant, threads)| {
            let (a, b) = (median(here.cell(variant, threads)), median(there.cell(variant, threads)));
            let seconds = |m: Option<f64>| m.map_or_else(|| "–".into(), format_seconds);
            let ratio_text = a.zip(b).map_or_else(|| "–".into(), |(a, b)| format!("{:.2}×", a / b));
            let state = if a.is_some() && b.is_some() { CheckState::Ok } else { CheckState::Skipped };
            TableRow {
                variant: variant.into(),
                threads,
                check: state,
                cells: vec![variant.into(), threads.to_string(), seconds(a), seconds(b), ratio_text],
            }
        })
        .collect();
    Ok(Table { headers, rows })
}

/// The distinct confidence levels of the measured cells' median intervals (one, when every cell
/// ran as often), in increasing order.
fn interval_levels(result: &RunResult) -> Vec<f64> {
    let mut levels: Vec<f64> =
        result.cells.iter().filter_map(|c| c.summary.as_ref()).map(|s| s.median_ci_level).collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    levels
}

/// An interval's confidence level as a person reads it, rounded down: `96.8%`, or `no` for one run (whose
/// "interval" is the run itself).
fn percent_level(level: f64) -> String {
    if level > 0.0 {
        format!("{}%", (level * 1000.0).floor() / 10.0)
    } else {
        "no".into()
    }
}

/// median, CI, min, [throughput,] vs baseline, vs 1 thread, efficiency; `level` adds the
/// interval's confidence level to it (when cells differ in it).
fn timing_cells(cell: &CellResult, throughput: bool, level: bool) -> Vec<String> {
    let Some(summary) = &cell.summary else {
        return vec!["–".to_string(); 6 + usize::from(throughput)];
    };
    let interval = format!("{} – {}", format_seconds(summary.median_ci.0), format_seconds(summary.median_ci.1));
    let mut cells = vec![
        format!("{}{}", format_seconds(summary.median), if summary.noisy { " (noisy)" } else { "" }),
        if level { format!("{interval} ({})", percent_level(summary.median_ci_level)) } else { interval },
        format_seconds(summary.min),
    ];
    if throughput {
        cells.push(cell.throughput.map_or_else(|| "–".into(), format_rate));
    }
    cells.extend([
        ratio(cell.speedup_vs_baseline, "×"),
        ratio(cell.speedup_vs_one_thread, "×"),
        cell.efficiency.map_or_else(|| "–".into(), |e| format!("{:.0}%", e * 100.0)),
    ]);
    cells
}

/// An aligned text table with a one-line header about the run and a footnote on noise.
pub fn table(result: &RunResult) -> String {
    let Table { headers, rows } = table_data(result);
    let body: Vec<Vec<String>> = rows.into_iter().map(|row| row.cells).collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            body.iter()
                .map(|row| row[column].chars().count())
                .chain([headers[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (text, width))| {
                let pad = " ".repeat(width - text.chars().count());
                if i < 2 {
                    format!("{text}{pad}")
                } else {
                    format!("{pad}{text}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = String::new();
    let params: Vec<String> = result.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "{} — {} ({}; {} runs per cell after {} warm-up)",
        result.experiment,
        params.join(" "),
        result.environment.platform.platform,
        result.repeat,
        result.warmup
    );
    let _ = writeln!(out, "{}", line(&headers));
    for row in &body {
        let _ = writeln!(out, "{}", line(row));
    }
    for line in lesson_lines(result)
        .into_iter()
        .chain(notes(result))
        .chain(fit_lines(result))
        .chain(curve_lines(result))
        .chain(finding_lines(result))
    {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// One sentence above the page's chart: the title, the fastest checked cell against the
/// baseline (when speedups were measured), and how the cells were timed.
pub fn summary_line(result: &RunResult) -> String {
    let best = result
        .cells
        .iter()
        .filter(|cell| cell.unchecked.is_none())
        .filter_map(|cell| cell.speedup_vs_baseline.map(|speedup| (cell, speedup)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let best = best.map_or_else(String::new, |(cell, speedup)| {
        let plural = if cell.threads == 1 { "" } else { "s" };
        format!("Best: {} on {} thread{plural}, {speedup:.2}× vs {}. ", cell.variant, cell.threads, result.baseline)
    });
    format!(
        "{}. {best}{} runs per cell after {} warm-up; whole run {:.2} s.",
        result.title, result.repeat, result.warmup, result.wall_seconds
    )
}

/// The experiment's lessons as the run checked them, one line each: shown (with the numbers),
/// NOT SHOWN (the numbers and the likely reason) or not testable here (why).
pub fn lesson_lines(result: &RunResult) -> Vec<String> {
    result
        .lessons
        .iter()
        .map(|lesson| match &lesson.verdict {
            Verdict::Shown { observed } => format!("lesson shown: {} — {observed}", lesson.claim),
            Verdict::NotShown { observed, likely } => {
                format!("lesson NOT shown: {} — {observed}; likely: {likely}", lesson.claim)
            }
            Verdict::NotTestable { why } => format!("lesson not testable here: {} — {why}", lesson.claim),
        })
        .collect()
}

/// The footnotes under a result's table, as the CLI prints them and the page lists them: noise,
/// what the intervals really cover, batched cells, a debug build.
pub fn notes(result: &RunResult) -> Vec<String> {
    let mut notes = Vec::new();
    if !result.fixed_duration && result.cells.iter().any(|c| c.summary.as_ref().is_some_and(|s| s.noisy)) {
        notes.push("(noisy): the median's confidence interval is wider than 10% of it — the machine was busy; use more --repeat".into());
    }
    notes.extend(interval_note(result));
    let batched: Vec<String> = result
        .cells
        .iter()
        .filter(|c| c.runs_per_sample > 1)
        .map(|c| format!("{} · {} ×{}", c.variant, c.threads, c.runs_per_sample))
        .collect();
    if !batched.is_empty() {
        let resolution = format_seconds(result.environment.platform.timer_resolution_ns as f64 / 1e9);
        notes.push(format!(
            "(batched): one run lasts under 100 ticks of this clock ({resolution}), so these cells were timed several runs per sample, times per run: {}",
            batched.join(", ")
        ));
    }
    if result.environment.profile == "debug" {
        notes.push("note: a debug build — timings are not representative; build with --release".into());
    }
    notes
}

/// What the intervals cover when fewer runs than a 95% interval needs were made: said, not
/// hidden behind a "95%" label.
fn interval_note(result: &RunResult) -> Option<String> {
    let lowest = result
        .cells
        .iter()
        .filter_map(|c| c.summary.as_ref())
        .min_by(|a, b| a.median_ci_level.total_cmp(&b.median_ci_level))?;
    if result.fixed_duration || lowest.median_ci_level >= 0.95 {
        return None;
    }
    Some(if lowest.n == 1 {
        format!("(interval): one run per cell gives no interval; use --repeat {DEFAULT_REPEAT} or more for a 95% one")
    } else {
        format!(
            "(interval): with {} runs a cell's interval is min – max, which holds the true median with {} confidence, not 95%; --repeat {DEFAULT_REPEAT} or more reaches 95%",
            lowest.n,
            percent_level(lowest.median_ci_level)
        )
    })
}

/// Each cell's findings, prefixed with the cell and, over several runs, how many reported and
/// that the sentences — their counts included — are the first such run's (the table's columns
/// are medians over the runs, so a count may differ): `lock · 2 threads [5/5 runs; the first]: …`.
pub fn finding_lines(result: &RunResult) -> Vec<String> {
    result
        .cells
        .iter()
        .flat_map(|cell| {
            let threads = if cell.threads == 1 { "1 thread".to_string() } else { format!("{} threads", cell.threads) };
            let runs = match cell.samples.len() {
                0 | 1 => String::new(),
                runs => format!(" [{}/{runs} runs; the first]", cell.finding_runs),
            };
            cell.findings.iter().map(move |finding| format!("{} · {threads}{runs}: {finding}", cell.variant))
        })
        .collect()
}

/// One sentence per fitted variant: its serial fraction and what the law then predicts.
pub fn fit_lines(result: &RunResult) -> Vec<String> {
    result
        .fits
        .iter()
        .map(|fit| {
            let percent = three_digits(fit.serial_fraction * 100.0);
            match fit.law {
                ScalingLaw::Amdahl => {
                    let limit = if fit.serial_fraction > 0.0 {
                        format!("at most {}× on any number of threads", three_digits(1.0 / fit.serial_fraction))
                    } else {
                        "no limit in sight".into()
                    };
                    format!("Amdahl fit, {}: serial fraction {percent}% → {limit}", fit.variant)
                }
                ScalingLaw::Gustafson => format!(
                    "Gustafson fit, {} (size grown with threads): serial fraction {percent}% → scaled speedup {}× at 64 threads",
                    fit.variant,
                    three_digits(fit.speedup(64.0))
                ),
            }
        })
        .collect()
}

/// CSV with one row per cell, raw numbers (seconds, units/s), for spreadsheets.
pub fn csv(result: &RunResult) -> String {
    let metrics = metric_columns(result);
    let mut out = String::from(
        "experiment,variant,threads,runs,median_s,median_ci_low_s,median_ci_high_s,mean_s,stddev_s,min_s,max_s,\
         throughput_per_s,speedup_vs_baseline,speedup_vs_one_thread,efficiency,check_passed,noisy,skipped,unchecked",
    );
    for (name, unit) in &metrics {
        out.push(',');
        out.push_str(&csv_field(&if unit.is_empty() { name.clone() } else { format!("{name} ({unit})") }));
    }
    out.push('\n');
    let number = |value: Option<f64>| value.map_or_else(String::new, |v| format!("{v}"));
    for cell in &result.cells {
        let s = cell.summary.as_ref();
        let fields = [
            result.experiment.clone(),
            cell.variant.clone(),
            cell.threads.to_string(),
            cell.samples.len().to_string(),
            number(s.map(|s| s.median)),
            number(s.map(|s| s.median_ci.0)),
            number(s.map(|s| s.median_ci.1)),
            number(s.map(|s| s.mean)),
            number(s.map(|s| s.stddev)),
            number(s.map(|s| s.min)),
            number(s.map(|s| s.max)),
            number(cell.throughput),
            number(cell.speedup_vs_baseline),
            number(cell.speedup_vs_one_thread),
            number(cell.efficiency),
            cell.check.as_ref().map_or_else(String::new, |c| c.passed.to_string()),
            s.map_or_else(String::new, |s| s.noisy.to_string()),
            csv_field(cell.skipped.as_deref().unwrap_or("")),
            csv_field(cell.unchecked.as_deref().unwrap_or("")),
        ];
        out.push_str(&fields.join(","));
        for (name, _) in &metrics {
            out.push(',');
            out.push_str(&number(cell.metrics.get(name).map(|m| m.median)));
        }
        out.push('\n');
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line of a chart's legend at (`x`, `y`): a stroke of `colour`, then `label`.
fn legend_entry(svg: &mut String, x: f64, y: f64, colour: &str, label: &str) {
    let _ = write!(
        svg,
        r#"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
        x + 14.0,
        x + 36.0,
        x + 42.0,
        y + 4.0,
        xml_escape(label)
    );
}

const PALETTE: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/// What a chart plots against threads.
struct Plot<'a> {
    /// The value of a cell, if it has one.
    value: &'a dyn Fn(&CellResult) -> Option<f64>,
    /// Axis label and how a value reads ("1.8×", "6.2 M").
    label: String,
    format: &'a dyn Fn(f64) -> String,
    /// Draw the ideal linear speedup (y = threads).
    ideal: bool,
    /// A cell's value is a time the clock could not resolve: how it reads instead.
    unresolved: &'a dyn Fn(&CellResult) -> Option<String>,
}

/// `cell`'s `metric`, as text, when it is a time below the clock's resolution.
fn unresolved_metric(cell: &CellResult, metric: &str) -> Option<String> {
    cell.metrics.get(metric).filter(|m| m.below_clock_resolution_ns.is_some()).map(metric_text)
}

/// The chart that fits the result: the experiment's chosen metric against threads, or speedup
/// over the baseline with the ideal line — or, when no variant ran at more than one thread
/// count, bars with their intervals (a line through one point per variant says nothing).
pub fn chart_svg(result: &RunResult) -> String {
    if !sweeps_threads(result) {
        return bar_chart(result);
    }
    match &result.chart_metric {
        Some(metric) => {
            let unit =
                result.cells.iter().find_map(|c| c.metrics.get(metric)).map(|m| m.unit.clone()).unwrap_or_default();
            line_chart(
                result,
                &Plot {
                    value: &|cell| cell.metrics.get(metric).map(|m| m.median),
                    label: if unit.is_empty() { metric.clone() } else { format!("{metric} ({unit})") },
                    format: &format_metric,
                    ideal: false,
                    unresolved: &|cell| unresolved_metric(cell, metric),
                },
            )
        }
        None => speedup_svg(result),
    }
}

/// Whether some variant was measured at two or more thread counts.
fn sweeps_threads(result: &RunResult) -> bool {
    let measured: Vec<&CellResult> = result.cells.iter().filter(|c| c.summary.is_some()).collect();
    measured.iter().any(|a| measured.iter().any(|b| a.variant == b.variant && a.threads != b.threads))
}

/// One bar per measured cell: the chosen metric's median with its min–max whisker, or the median
/// time per run with that median's confidence interval (its level in the label).
fn bar_chart(result: &RunResult) -> String {
    let bars: Vec<(&CellResult, f64, f64, f64)> = result
        .cells
        .iter()
        .filter_map(|cell| match &result.chart_metric {
            Some(metric) => cell.metrics.get(metric).map(|m| (cell, m.median, m.min, m.max)),
            None => cell.summary.as_ref().map(|s| (cell, s.median, s.median_ci.0, s.median_ci.1)),
        })
        .collect();
    let value_text = |cell: &CellResult, value: f64, format: &dyn Fn(f64) -> String| {
        result
            .chart_metric
            .as_deref()
            .and_then(|metric| unresolved_metric(cell, metric))
            .unwrap_or_else(|| format(value))
    };
    let (label, format): (String, &dyn Fn(f64) -> String) = match &result.chart_metric {
        Some(metric) => {
            let unit = bars
                .first()
                .and_then(|(cell, ..)| cell.metrics.get(metric))
                .map(|m| m.unit.clone())
                .unwrap_or_default();
            (
                if unit.is_empty() {
                    format!("{metric} (whiskers: min – max)")
                } else {
                    format!("{metric}, {unit} (whiskers: min – max)")
                },
                &format_metric,
            )
        }
        None => {
            let level = match interval_levels(result).as_slice() {
                [level] => format!("{} interval", percent_level(*level)),
                _ => "interval, levels in the table".into(),
            };
            (format!("median time per run (whiskers: its {level})"), &format_seconds)
        }
    };
    let (width, left, right, top, bar_height, gap) = (560.0, 150.0, 70.0, 28.0, 18.0, 8.0);
    let height = top + bars.len() as f64 * (bar_height + gap) + 30.0;
    let highest = bars.iter().map(|b| b.3.max(b.1)).fold(0.0, f64::max);
    let step = tick_step(if highest > 0.0 { highest } else { 1.0 });
    let x_max = ((highest / step).ceil() * step).max(step);
    let x = |value: f64| left + value / x_max * (width - left - right);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart bars" role="img" font-family="system-ui, sans-serif" font-size="12"><title>{}: {}</title><text x="{left}" y="16">{}</text>"#,
        xml_escape(&result.experiment),
        xml_escape(&label),
        xml_escape(&label)
    );
    let axis_y = top + bars.len() as f64 * (bar_height + gap);
    let mut tick = 0.0;
    while tick <= x_max + step / 2.0 {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{axis_y}" stroke="#eee"/><text x="{0:.1}" y="{1}" text-anchor="middle">{2}</text>"##,
            x(tick),
            axis_y + 16.0,
            if tick == 0.0 { "0".to_string() } else { format(tick) }
        );
        tick += step;
    }
    let several_counts = bars.iter().any(|b| b.0.threads != bars[0].0.threads);
    for (index, (cell, value, low, high)) in bars.iter().enumerate() {
        let y = top + index as f64 * (bar_height + gap);
        let colour = PALETTE[index % PALETTE.len()];
        let name = if several_counts { format!("{} · {}", cell.variant, cell.threads) } else { cell.variant.clone() };
        let middle = y + bar_height / 2.0;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="bar" data-variant="{}" x="{left}" y="{y:.1}" width="{:.1}" height="{bar_height}" fill="{colour}"><title>{} · {} thread{}: {} ({} – {})</title></rect><line class="whisker" x1="{:.1}" x2="{:.1}" y1="{middle:.1}" y2="{middle:.1}" stroke="#222"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            left - 6.0,
            middle + 4.0,
            xml_escape(&name),
            xml_escape(&cell.variant),
            (x(*value) - left).max(0.5),
            xml_escape(&cell.variant),
            cell.threads,
            if cell.threads == 1 { "" } else { "s" },
            xml_escape(&value_text(cell, *value, format)),
            format(*low),
            format(*high),
            x(*low),
            x(*high),
            x(high.max(*value)) + 4.0,
            middle + 4.0,
            xml_escape(&value_text(cell, *value, format))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Speedup over the baseline against threads, one line per variant (a variant that runs at one
/// thread count is a single point; the baseline sits at 1×), with the ideal speedup dashed.
pub fn speedup_svg(result: &RunResult) -> String {
    line_chart(
        result,
        &Plot {
            value: &|cell| cell.speedup_vs_baseline,
            label: format!("speedup vs {}", result.baseline),
            format: &|v| format!("{v:.2}×"),
            ideal: true,
            unresolved: &|_| None,
        },
    )
}

/// A step of 1, 2 or 5 × 10^k giving about five ticks up to `max`.
/// Grid lines across `left..right` at every `step` from 0 to `y_max`, each labelled at the left
/// (`y` maps a value to its pixel row).
fn horizontal_grid(
    svg: &mut String,
    (left, right): (f64, f64),
    (y_max, step): (f64, f64),
    y: impl Fn(f64) -> f64,
    label: impl Fn(f64) -> String,
) {
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{right}" y1="{y0:.1}" y2="{y0:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            y(tick) + 4.0,
            label(tick),
            y0 = y(tick)
        );
        tick += step;
    }
}

fn tick_step(max: f64) -> f64 {
    let rough = (max / 5.0).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|step| *step >= rough).unwrap_or(10.0 * magnitude)
}

/// An SVG line chart of `plot` against threads, one line per variant; points carry a `<title>`
/// with the exact figure and the run time.
fn line_chart(result: &RunResult, plot: &Plot<'_>) -> String {
    let (width, height, left, right, top, bottom) = (560.0, 340.0, 64.0, 150.0, 20.0, 44.0);
    let mut variants: Vec<&str> = Vec::new();
    for cell in result.cells.iter().filter(|c| c.summary.is_some()) {
        if !variants.contains(&cell.variant.as_str()) {
            variants.push(&cell.variant);
        }
    }
    let points = |variant: &str| -> Vec<(f64, f64, &CellResult)> {
        let mut points: Vec<_> = result
            .cells
            .iter()
            .filter(|c| c.variant == variant)
            .filter_map(|c| Some((c.threads as f64, (plot.value)(c)?, c)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    let max_threads =
        result.cells.iter().filter(|c| c.summary.is_some()).map(|c| c.threads).max().unwrap_or(1).max(2) as f64;
    let highest =
        variants.iter().flat_map(|v| points(v)).map(|p| p.1).fold(if plot.ideal { max_threads } else { 0.0 }, f64::max);
    let step = tick_step(if highest > 0.0 { highest } else { 1.0 });
    let y_max = ((highest / step).ceil() * step).max(step);
    let x = |threads: f64| left + (threads - 1.0) / (max_threads - 1.0) * (width - left - right);
    let y = |value: f64| top + (1.0 - value / y_max) * (height - top - bottom);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart" role="img" font-family="system-ui, sans-serif" font-size="12"><title>{} against threads: {}</title>"#,
        xml_escape(&plot.label),
        xml_escape(&result.experiment)
    );
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#bbb"/>"##,
        width - left - right,
        height - top - bottom
    );
    horizontal_grid(&mut svg, (left, width - right), (y_max, step), y, plot.format);
    let mut labelled: Vec<usize> = result
        .cells
        .iter()
        .filter(|c| c.summary.is_some())
        .map(|c| c.threads)
        .chain(result.threads.iter().copied())
        .collect();
    labelled.sort_unstable();
    labelled.dedup();
    for threads in labelled {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{threads}</text>"#,
            x(threads as f64),
            height - bottom + 16.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">threads</text><text transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (left + width - right) / 2.0,
        height - 6.0,
        (top + height - bottom) / 2.0,
        xml_escape(&plot.label)
    );
    let legend_x = width - right + 14.0;
    let mut legend_rows = 0.0;
    if plot.ideal {
        let _ = write!(
            svg,
            r##"<line class="ideal" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="5 4"/><line x1="{legend_x}" x2="{}" y1="{top}" y2="{top}" stroke="#888" stroke-dasharray="5 4"/><text x="{}" y="{}">ideal</text>"##,
            x(1.0),
            y(1.0),
            x(max_threads),
            y(max_threads),
            legend_x + 22.0,
            legend_x + 28.0,
            top + 4.0
        );
        legend_rows = 1.0;
    }
    for (index, variant) in variants.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let line = points(variant);
        let path: Vec<String> = line.iter().map(|(t, v, _)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let _ = write!(
            svg,
            r#"<polyline class="measured" data-variant="{}" points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            xml_escape(variant),
            path.join(" ")
        );
        if let (true, Some(fit), Some((1.0, at_one, _))) =
            (plot.ideal, result.fits.iter().find(|f| f.variant == *variant), line.first().copied())
        {
            let curve: Vec<String> = (0..=24)
                .map(|i| 1.0 + (max_threads - 1.0) * f64::from(i) / 24.0)
                .map(|threads| format!("{:.1},{:.1}", x(threads), y((at_one * fit.speedup(threads)).min(y_max))))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline class="fit" data-variant="{}" points="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="2 3"><title>{} fit: serial fraction {:.1}%</title></polyline>"#,
                xml_escape(variant),
                curve.join(" "),
                match fit.law {
                    ScalingLaw::Amdahl => "Amdahl",
                    ScalingLaw::Gustafson => "Gustafson",
                },
                fit.serial_fraction * 100.0
            );
        }
        for (threads, value, cell) in &line {
            let median = cell.summary.as_ref().map_or(0.0, |s| s.median);
            // A reading the clock could not resolve is drawn hollow and says so.
            let (fill, text) = match (plot.unresolved)(cell) {
                Some(text) => ("#fff", text),
                None => (colour, (plot.format)(*value)),
            };
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="1.5"><title>{} · {threads} threads: {} ({} per run)</title></circle>"#,
                x(*threads),
                y(*value),
                xml_escape(variant),
                xml_escape(&text),
                format_seconds(median)
            );
        }
        legend_entry(&mut svg, width - right, top + 20.0 * (index as f64 + legend_rows), colour, variant);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{Check, Environment};
    use conlab_core::stats::Summary;

    fn cell(variant: &str, threads: usize, seconds: f64, speedup: f64) -> CellResult {
        CellResult {
            variant: variant.into(),
            threads,
            samples: vec![seconds; 3],
            summary: Summary::of(&[seconds; 3]),
            throughput: Some(1000.0 / seconds),
            speedup_vs_baseline: Some(speedup),
            speedup_vs_one_thread: Some(speedup),
            efficiency: Some(speedup / threads as f64),
            check: Some(Check { passed: true, expected: "0x1".into(), actual: "0x1".into() }),
            skipped: None,
            unchecked: None,
            metrics: Default::default(),
            latencies: Default::default(),
            curves: Default::default(),
            findings: Vec::new(),
            finding_runs: 0,
            profile: None,
            runs_per_sample: 1,
        }
    }

    fn result(cells: Vec<CellResult>) -> RunResult {
        RunResult {
            schema: 1,
            experiment: "io-fanout".into(),
            title: "t".into(),
            params: [("tasks".to_string(), crate::experiment::Value::Int(8))].into(),
            variants: vec!["seq".into(), "thread-per-task".into(), "pool".into()],
            threads: vec![1, 2],
            repeat: 3,
            warmup: 1,
            baseline: "seq".into(),
            work_unit: Some("tasks".into()),
            environment: Environment::current(),
            cells,
            fits: Vec::new(),
            all_checks_passed: true,
            wall_seconds: 1.0,
            trace: None,
            lessons: Vec::new(),
            fixed_duration: false,
            chart_metric: None,
        }
    }

    pub(super) fn sample() -> RunResult {
        result(vec![
            cell("seq", 1, 0.08, 1.0),
            cell("thread-per-task", 8, 0.0105, 7.6),
            cell("pool", 1, 0.08, 1.0),
            cell("pool", 2, 0.04, 2.0),
        ])
    }

    #[test]
    fn units_are_readable() {
        assert_eq!(format_seconds(1.5), "1.50 s");
        assert_eq!(format_seconds(0.0456), "45.6 ms");
        assert_eq!(format_seconds(0.000789), "789 µs");
        assert_eq!(format_seconds(12e-9), "12.0 ns");
        assert_eq!(format_rate(3.05e9), "3.05 G");
        assert_eq!(format_rate(99.0), "99.0");
        // A contended lock at 1/250 of a plain add's speed is not "0.00×".
        assert_eq!(ratio(Some(0.004), "×"), "1/250×");
        assert_eq!(ratio(Some(0.12), "×"), "0.12×");
        assert_eq!(ratio(None, "×"), "–");
    }

    #[test]
    fn the_interval_header_states_its_real_level() {
        let with_runs = |runs: usize| {
            let mut result = sample();
            for cell in result.cells.iter_mut() {
                let samples: Vec<f64> = (0..runs).map(|i| 0.08 + 0.0001 * i as f64).collect();
                cell.summary = Summary::of(&samples);
                cell.samples = samples;
            }
            result
        };
        // The sample's 3 runs: min – max covers the true median with 75% confidence.
        assert_eq!(table_data(&sample()).headers[3], "75% CI of median");
        assert!(
            notes(&sample()).iter().any(|n| n.contains("with 3 runs") && n.contains("75% confidence, not 95%")),
            "{:?}",
            notes(&sample())
        );
        let five = with_runs(5);
        assert_eq!(table_data(&five).headers[3], "93.7% CI of median", "1 − 2/32, rounded down");
        let six = with_runs(DEFAULT_REPEAT);
        assert_eq!(
            table_data(&six).headers[3],
            "96.8% CI of median",
            "the default repeat makes the headline at least 95%"
        );
        assert!(notes(&six).iter().all(|n| !n.starts_with("(interval)")), "{:?}", notes(&six));
        // Cells that ran a different number of times say their own level.
        let mut mixed = six;
        mixed.cells[0].summary = Summary::of(&[0.08, 0.09, 0.1]);
        let table = table_data(&mixed);
        assert_eq!(table.headers[3], "CI of median (level)");
        assert!(
            table.rows[0].cells[3].ends_with("(75%)") && table.rows[1].cells[3].ends_with("(96.8%)"),
            "{:?}",
            table.rows
        );
    }

    #[test]
    fn table_shows_checks_and_skips() {
        let mut result = sample();
        result.cells[3].check = Some(Check { passed: false, expected: "0x1".into(), actual: "0x2".into() });
        result.cells.push(CellResult::skipped("pool", 4, "no pool".into()));
        let table = table(&result);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("io-fanout — tasks=8"));
        assert!(lines[1].starts_with("variant          threads"), "{table}");
        assert!(lines[2].ends_with("ok") && lines[2].contains("80.0 ms"), "{table}");
        assert!(lines[5].ends_with("WRONG (0x2 ≠ 0x1)"), "{table}");
        assert!(lines[6].ends_with("skipped: no pool"), "{table}");
        let states: Vec<CheckState> = table_data(&result).rows.iter().map(|row| row.check).collect();
        assert_eq!(states, [CheckState::Ok, CheckState::Ok, CheckState::Ok, CheckState::Wrong, CheckState::Skipped]);
        let widths: Vec<usize> = lines[1..5].iter().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "aligned columns: {widths:?}\n{table}");
    }

    #[test]
    fn metrics_become_columns_and_unchecked_cells_say_why() {
        let mut result = sample();
        result.cells[1]
            .metrics
            .insert("lost".into(), crate::experiment::Metric::of("updates", &[10.0, 30.0, 20.0]).unwrap());
        result.cells[1].unchecked = Some("racy by design".into());
        result.cells[1].check = None;
        let table = table(&result);
        assert!(table.lines().nth(1).unwrap().contains("lost (updates)"), "{table}");
        let row = table.lines().nth(3).unwrap();
        assert!(row.contains(" 20.0 ") && row.ends_with("unchecked: racy by design"), "{table}");
        let csv = csv(&result);
        assert!(csv.lines().next().unwrap().ends_with(",unchecked,lost (updates)"));
        assert!(csv.lines().nth(2).unwrap().ends_with(",racy by design,20"), "{csv}");
    }

    #[test]
    fn findings_follow_the_table_named_by_their_cell() {
        let mut result = sample();
        result.cells[1].findings = vec!["thread 0 deadlocked on itself".into(), "and stopped".into()];
        result.cells[1].finding_runs = 2;
        let prefix = "thread-per-task · 8 threads [2/3 runs; the first]";
        assert_eq!(
            finding_lines(&result),
            [format!("{prefix}: thread 0 deadlocked on itself"), format!("{prefix}: and stopped")]
        );
        assert!(table(&result).contains(&format!("\n{prefix}: and stopped\n")), "{}", table(&result));
    }

    #[test]
    fn csv_has_one_row_per_cell_and_quotes_when_needed() {
        let mut result = sample();
        result.cells[0].skipped = Some("a, \"b\"".into());
        let csv = csv(&result);
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.lines().nth(1).unwrap().starts_with("io-fanout,seq,1,3,0.08,"));
        assert!(csv.lines().nth(1).unwrap().ends_with(",\"a, \"\"b\"\"\","));
    }

    #[test]
    fn chart_has_a_line_per_variant_and_labels_every_thread_count() {
        let svg = speedup_svg(&sample());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        for variant in ["seq", "thread-per-task", "pool"] {
            assert!(svg.contains(&format!(r#"data-variant="{variant}""#)), "{variant}");
        }
        for threads in [1, 2, 8] {
            assert!(svg.contains(&format!(r#"text-anchor="middle">{threads}</text>"#)), "axis label {threads}");
        }
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains(r#"class="ideal""#));
    }

    #[test]
    fn fits_are_drawn_as_curves_and_told_under_the_table() {
        let mut result = sample();
        result.fits = vec![crate::experiment::Fit {
            variant: "pool".into(),
            law: ScalingLaw::Amdahl,
            serial_fraction: 0.05,
            points: 1,
        }];
        let svg = speedup_svg(&result);
        assert_eq!(svg.matches(r#"class="fit" data-variant="pool""#).count(), 1, "{svg}");
        assert!(svg.contains("Amdahl fit: serial fraction 5.0%"));
        assert!(
            table(&result).contains("Amdahl fit, pool: serial fraction 5.00% → at most 20.0× on any number of threads"),
            "{}",
            table(&result)
        );
        result.fits[0] = crate::experiment::Fit { law: ScalingLaw::Gustafson, ..result.fits[0].clone() };
        assert!(table(&result).contains("scaled speedup 60.9× at 64 threads"), "{}", table(&result));
    }

    #[test]
    fn a_comparison_pairs_cells_and_refuses_different_runs() {
        let here = sample();
        let mut there = sample();
        there.environment.platform.platform = "native".into();
        there.cells[3] = cell("pool", 2, 0.02, 4.0);
        there.cells.remove(1);
        let table = comparison(&here, &there).unwrap();
        assert_eq!(table.headers[4], format!("{} / native", here.environment.platform.platform));
        let pool2 = table.rows.iter().find(|r| r.variant == "pool" && r.threads == 2).unwrap();
        assert_eq!(pool2.cells[2..], ["40.0 ms", "20.0 ms", "2.00×"]);
        let missing = table.rows.iter().find(|r| r.variant == "thread-per-task").unwrap();
        assert_eq!((missing.check, missing.cells[3].as_str()), (CheckState::Skipped, "–"));
        assert_eq!(table.rows.len(), 4);
        // A page's JSON writes the float 8.0 as 8: still the same setting.
        there.params.insert("tasks".into(), crate::experiment::Value::Float(8.0));
        assert!(comparison(&here, &there).is_ok());
        there.params.insert("tasks".into(), crate::experiment::Value::Int(9));
        assert_eq!(
            comparison(&here, &there).unwrap_err(),
            "the parameters differ (tasks=8 here, 9 there): run the same parameters to compare"
        );
        there.experiment = "mandelbrot".into();
        assert!(comparison(&here, &there).unwrap_err().starts_with("the imported result is of `mandelbrot`"));
    }

    #[test]
    fn without_a_thread_sweep_cells_become_bars_with_whiskers() {
        let mut result = sample();
        result.cells.retain(|cell| cell.threads == 1 || cell.variant == "thread-per-task");
        let svg = chart_svg(&result);
        assert!(svg.contains(r#"class="chart bars""#) && !svg.contains("polyline"), "{svg}");
        assert_eq!((svg.matches(r#"class="bar""#).count(), svg.matches(r#"class="whisker""#).count()), (3, 3));
        assert!(
            svg.contains("median time per run") && svg.contains("seq · 1") && svg.contains("thread-per-task · 8"),
            "{svg}"
        );
        for cell in result.cells.iter_mut() {
            cell.metrics.insert("depth".into(), crate::experiment::Metric::of("items", &[1.0, 3.0, 2.0]).unwrap());
        }
        result.chart_metric = Some("depth".into());
        let svg = chart_svg(&result);
        assert!(svg.contains("depth, items (whiskers: min – max)") && svg.contains("(1.00 – 3.00)"), "{svg}");
        assert!(chart_svg(&sample()).contains("polyline"), "a sweep stays a line chart");
    }

    #[test]
    fn a_chosen_metric_is_charted_without_the_ideal_line() {
        let mut result = sample();
        for (cell, value) in result.cells.iter_mut().zip([1.0e6, 2.0e6, 3.0e6, 4.0e6]) {
            cell.metrics.insert("acquisitions".into(), crate::experiment::Metric::of("/s", &[value]).unwrap());
        }
        result.chart_metric = Some("acquisitions".into());
        let svg = chart_svg(&result);
        assert!(svg.contains("acquisitions (/s)") && !svg.contains(r#"class="ideal""#));
        assert!(svg.contains("4.00 M") && svg.contains(">0<"), "ticks from 0 in SI units: {svg}");
        assert_eq!(tick_step(7.3), 2.0);
        assert_eq!(tick_step(0.9), 0.2);
    }

    #[test]
    fn waits_shorter_than_two_clock_ticks_read_as_the_resolution_not_as_zero() {
        use crate::experiment::{Metric, TimeUnit};
        // A browser clock ticking every 5 µs: a p50 of 0 ns and a p99 of one tick.
        let floor = 10_000.0;
        let p50 = Metric::of_time(TimeUnit::Nanoseconds, &[0.0, 0.0, 0.0], floor).unwrap();
        let p99 = Metric::of_time(TimeUnit::Nanoseconds, &[5_000.0, 5_000.0, 10_000.0], floor).unwrap();
        let resolved = Metric::of_time(TimeUnit::Microseconds, &[40.0, 50.0, 60.0], floor).unwrap();
        assert_eq!(
            (p50.below_clock_resolution_ns, p99.below_clock_resolution_ns, resolved.below_clock_resolution_ns),
            (Some(floor), Some(floor), None)
        );
        assert_eq!(
            serde_json::to_value(&p50).unwrap()["below_clock_resolution_ns"],
            10_000.0,
            "the flag is in the JSON"
        );
        let mut result = sample();
        for cell in result.cells.iter_mut() {
            cell.metrics.insert("wait p50".into(), p50.clone());
            cell.metrics.insert("wait p99".into(), resolved.clone());
        }
        let table = table(&result);
        assert!(table.contains("< 10.0 µs (clock resolution)") && table.contains("50.0"), "{table}");
        assert!(
            !table.lines().skip(2).any(|line| line.split("  ").any(|field| field.trim() == "0")),
            "no wait reads as a measured 0: {table}"
        );
        result.chart_metric = Some("wait p50".into());
        let svg = chart_svg(&result);
        assert!(
            svg.contains("&lt; 10.0 µs (clock resolution)") && svg.contains(r##"fill="#fff""##),
            "hollow, and says so: {svg}"
        );
    }

    #[test]
    fn metric_columns_sort_numbers_by_value() {
        let mut names = vec!["100% reads", "9% reads", "50% reads", "0% reads", "acquisitions"];
        names.sort_by_key(|name| natural_key(name));
        assert_eq!(names, ["0% reads", "9% reads", "50% reads", "100% reads", "acquisitions"]);
    }

    #[test]
    fn chart_text_is_escaped() {
        let mut result = sample();
        result.cells[3].variant = "<pool&>".into();
        let svg = speedup_svg(&result);
        assert!(svg.contains("&lt;pool&amp;&gt;") && !svg.contains("<pool&>"));
    }
}
