//! A recorded [`Trace`] as an SVG timeline (a Gantt chart): one block per experiment cell, one
//! lane per thread, one rectangle per span, coloured by what the thread was doing.
//!
//! Each cell gets its own time axis (cells ran one after another). Spans narrower than a pixel
//! are merged with their sub-pixel neighbours into one rectangle that says how many spans it
//! stands for and how their time divided by kind, coloured by the kind that took most of it
//! (marks, instants, merge with marks only) —
//! so a trace of 100 000 tiny tasks (or of a GIL changing hands at every call) stays a small
//! picture without dropping any of them. Nested spans (a join that helps while it waits) are drawn on top of
//! their parent. [`timeline_window_svg`] draws a window of every cell's time axis (zooming in:
//! the merged spans come apart again).

use std::fmt::Write;

use super::{format_seconds, xml_escape};
use conlab_core::trace::{lane_name, CellTrace, KindTimes, Span, SpanKind, Trace};

const WIDTH: f64 = 900.0;
const LABEL_WIDTH: f64 = 110.0;
const RIGHT: f64 = 16.0;
const LANE_HEIGHT: f64 = 16.0;
const CELL_GAP: f64 = 34.0;
const LEGEND_HEIGHT: f64 = 26.0;

/// Colour and legend text of each kind of span.
fn style(kind: SpanKind) -> (&'static str, &'static str) {
    match kind {
        SpanKind::Run => ("#4c78a8", "running"),
        SpanKind::Wait => ("#f58518", "waiting (lock, child, I/O)"),
        SpanKind::Idle => ("#c7c7c7", "idle / parked"),
        SpanKind::Steal => ("#e45756", "looking for work / stealing"),
        SpanKind::Mark => ("#222222", "event (submit, wake-up, notify, GIL drop request)"),
    }
}

const KINDS: [SpanKind; 5] = [SpanKind::Run, SpanKind::Wait, SpanKind::Idle, SpanKind::Steal, SpanKind::Mark];

/// The whole trace as one SVG, cells stacked top to bottom.
pub fn timeline_svg(trace: &Trace) -> String {
    timeline_window_svg(trace, Window::WHOLE)
}

/// A part of each cell's time axis, as fractions of its length: `from` < `to`, both in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub from: f64,
    pub to: f64,
}

impl Window {
    pub const WHOLE: Window = Window { from: 0.0, to: 1.0 };

    /// A window, or why the fractions do not make one.
    pub fn new(from: f64, to: f64) -> Result<Self, String> {
        if (0.0..1.0).contains(&from) && to > from && to <= 1.0 {
            Ok(Self { from, to })
        } else {
            Err(format!("a timeline window needs 0 ≤ from < to ≤ 1, got {from} – {to}"))
        }
    }
}

/// The trace as one SVG showing only `window` of each cell's time axis.
pub fn timeline_window_svg(trace: &Trace, window: Window) -> String {
    let cells: Vec<&CellTrace> = trace.cells.iter().filter(|cell| !cell.spans.is_empty()).collect();
    let lanes: Vec<Vec<usize>> = cells.iter().map(|cell| lanes_of(cell)).collect();
    let height = LEGEND_HEIGHT + lanes.iter().map(|l| CELL_GAP + l.len() as f64 * LANE_HEIGHT).sum::<f64>() + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" class="timeline" role="img" font-family="system-ui, sans-serif" font-size="11"><title>per-thread timeline</title>"#
    );
    legend(&mut svg);
    let mut top = LEGEND_HEIGHT;
    for (cell, lanes) in cells.iter().zip(&lanes) {
        top = cell_block(&mut svg, cell, lanes, top, window);
    }
    if cells.is_empty() {
        let _ = write!(svg, r#"<text x="8" y="{}">no spans were recorded</text>"#, LEGEND_HEIGHT + 14.0);
    }
    svg.push_str("</svg>");
    svg
}

fn legend(svg: &mut String) {
    let mut x = 8.0;
    for kind in KINDS {
        let (colour, text) = style(kind);
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/><text x="{}" y="16">{text}</text>"#,
            x + 16.0
        );
        x += 24.0 + 6.2 * text.chars().count() as f64;
    }
}

/// Thread indices that have spans, in order.
fn lanes_of(cell: &CellTrace) -> Vec<usize> {
    let mut lanes: Vec<usize> = cell.spans.iter().map(|span| span.thread).collect();
    lanes.sort_unstable();
    lanes.dedup();
    lanes
}

/// Draws one cell's block starting at `top`; returns where the next one starts.
fn cell_block(svg: &mut String, cell: &CellTrace, lanes: &[usize], top: f64, window: Window) -> f64 {
    let first = cell.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    // Saturating: an imported file may hold any u64 (a damaged one, `u64::MAX` or an end before
    // its start); the block then draws squeezed, never panics.
    let last = cell.spans.iter().map(|s| s.end_ns).max().unwrap_or(first).max(first.saturating_add(1));
    let whole_ns = last.saturating_sub(first).max(1) as f64;
    let at = |fraction: f64| first.saturating_add((whole_ns * fraction) as u64);
    let (start, end) = (at(window.from), at(window.to));
    let span_ns = end.max(start.saturating_add(1)).saturating_sub(start).max(1) as f64;
    let plot_width = WIDTH - LABEL_WIDTH - RIGHT;
    // Clamped to the window: spans reaching past it end at its edges.
    let x = |ns: u64| LABEL_WIDTH + (ns.clamp(start, end) - start) as f64 / span_ns * plot_width;
    let heading_y = top + 20.0;
    let shown = if window == Window::WHOLE {
        format_seconds(whole_ns / 1e9)
    } else {
        format!(
            "{} – {} of {}",
            format_seconds((start - first) as f64 / 1e9),
            format_seconds((end - first) as f64 / 1e9),
            format_seconds(whole_ns / 1e9)
        )
    };
    let _ = write!(
        svg,
        r#"<text x="8" y="{heading_y}" font-weight="bold">{} · {} thread{}</text><text x="{}" y="{heading_y}" text-anchor="end">{shown}</text>"#,
        xml_escape(&cell.variant),
        cell.threads,
        if cell.threads == 1 { "" } else { "s" },
        WIDTH - RIGHT,
    );
    let lanes_top = top + CELL_GAP - 6.0;
    for (row, thread) in lanes.iter().enumerate() {
        let y = lanes_top + row as f64 * LANE_HEIGHT;
        let _ = write!(
            svg,
            r##"<text x="8" y="{:.1}">{}</text><rect x="{LABEL_WIDTH}" y="{y:.1}" width="{plot_width}" height="{:.1}" fill="#f7f7f7"/>"##,
            y + LANE_HEIGHT - 4.0,
            lane_name(*thread),
            LANE_HEIGHT - 2.0
        );
        let mut spans: Vec<&Span> =
            cell.spans.iter().filter(|s| s.thread == *thread && s.end_ns >= start && s.start_ns <= end).collect();
        // Parents before the spans nested in them, so children are drawn on top.
        spans.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
        for block in merge_subpixel(&spans, &x) {
            draw(svg, &block, y);
        }
    }
    lanes_top + lanes.len() as f64 * LANE_HEIGHT
}

/// Spans narrower than this many pixels (and no further apart) merge: one rectangle per two
/// pixels at most, what the eye can tell apart and the page can draw without stalling.
const MERGE_BELOW_PX: f64 = 2.0;

/// Spans (or runs of sub-pixel spans) as rectangles in pixels.
struct Block {
    x0: f64,
    x1: f64,
    kind: SpanKind,
    title: String,
    /// Time by kind of the sub-pixel spans merged into this block (empty for a wider span).
    merged: KindTimes,
    count: usize,
}

impl Block {
    /// A merged block's colour and title: the kind that took most of its time, and the split.
    fn settle(&mut self) {
        if self.count < 2 {
            return;
        }
        self.kind = self.merged.dominant().unwrap_or(self.kind);
        self.title = match self.kind {
            SpanKind::Mark => format!("{} short spans ({})", self.count, style(SpanKind::Mark).1),
            _ => format!("{} short spans ({})", self.count, self.merged.split(|kind| style(kind).1)),
        };
    }
}

fn merge_subpixel(spans: &[&Span], x: &impl Fn(u64) -> f64) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for span in spans {
        let (x0, x1) = (x(span.start_ns), x(span.end_ns));
        // Marks merge with marks only: a tick stays a tick.
        let tiny = x1 - x0 < MERGE_BELOW_PX;
        let time = span.end_ns.saturating_sub(span.start_ns);
        let joins = |last: &&mut Block| {
            tiny && !last.merged.is_empty()
                && (last.kind == SpanKind::Mark) == (span.kind == SpanKind::Mark)
                && x0 - last.x1 < MERGE_BELOW_PX
        };
        if let Some(last) = blocks.last_mut().filter(joins) {
            last.x1 = last.x1.max(x1);
            last.count += 1;
            last.merged.add(span.kind, time);
            continue;
        }
        if let Some(last) = blocks.last_mut() {
            last.settle();
        }
        let title = format!("{} · {}", span.label, format_seconds(time as f64 / 1e9));
        let mut merged = KindTimes::default();
        if tiny {
            merged.add(span.kind, time);
        }
        blocks.push(Block { x0, x1, kind: span.kind, title, merged, count: 1 });
    }
    if let Some(last) = blocks.last_mut() {
        last.settle();
    }
    blocks
}

fn draw(svg: &mut String, block: &Block, y: f64) {
    let (colour, _) = style(block.kind);
    let title = xml_escape(&block.title);
    if block.kind == SpanKind::Mark {
        let _ = write!(
            svg,
            r#"<rect class="mark" x="{:.1}" y="{y:.1}" width="1.5" height="{:.1}" fill="{colour}"><title>{title}</title></rect>"#,
            block.x0 - 0.75,
            LANE_HEIGHT - 2.0
        );
    } else {
        let _ = write!(
            svg,
            r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{title}</title></rect>"#,
            kind_class(block.kind),
            block.x0,
            y + 1.0,
            (block.x1 - block.x0).max(1.0),
            LANE_HEIGHT - 4.0
        );
    }
}

fn kind_class(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Run => "run",
        SpanKind::Wait => "wait",
        SpanKind::Idle => "idle",
        SpanKind::Steal => "steal",
        SpanKind::Mark => "mark",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(thread: usize, start_ns: u64, end_ns: u64, kind: SpanKind, label: &str) -> Span {
        Span { thread, start_ns, end_ns, kind, label: label.to_string().into() }
    }

    #[test]
    fn one_lane_per_thread_and_one_rect_per_visible_span() {
        let trace = Trace {
            cells: vec![CellTrace {
                variant: "steal".into(),
                threads: 2,
                spans: vec![
                    span(0, 0, 1_000_000, SpanKind::Run, "pool body"),
                    span(1, 0, 400_000, SpanKind::Idle, "parked"),
                    span(1, 400_000, 500_000, SpanKind::Steal, "stole from worker 0"),
                    span(1, 500_000, 1_000_000, SpanKind::Run, "task <stolen> from worker 0"),
                ],
            }],
        };
        let svg = timeline_svg(&trace);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("steal · 2 threads") && svg.contains("thread 0") && svg.contains("thread 1"));
        for class in ["run", "idle", "steal"] {
            assert!(svg.contains(&format!(r#"class="{class}""#)), "{class}");
        }
        assert_eq!(svg.matches(r#"class="run""#).count(), 2);
        assert!(svg.contains("task &lt;stolen&gt; from worker 0 · 500 µs"), "titles are escaped and timed");
    }

    /// An imported file can hold any `u64`: a span at the clock's end, one that ends before it
    /// starts, and times that sum past `u64::MAX` (the CI run at 1734931 met the first).
    #[test]
    fn spans_at_the_ends_of_the_clock_draw_without_panicking() {
        let spans = vec![
            span(0, u64::MAX, u64::MAX, SpanKind::Run, "at the end"),
            span(0, 5, 2, SpanKind::Wait, "backwards"),
            span(1, 0, u64::MAX, SpanKind::Run, "everything"),
            span(1, 0, u64::MAX, SpanKind::Run, "everything again"),
        ];
        let trace = Trace { cells: vec![CellTrace { variant: "damaged".into(), threads: 2, spans }] };
        for window in [Window::WHOLE, Window::new(0.25, 0.5).unwrap(), Window::new(0.999, 1.0).unwrap()] {
            let svg = timeline_window_svg(&trace, window);
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && svg.contains("damaged · 2 threads"));
        }
    }

    #[test]
    fn zooming_in_shows_the_window_and_separates_merged_spans() {
        let spans: Vec<Span> = (0..10_000u64).map(|i| span(0, i * 100, i * 100 + 60, SpanKind::Run, "task")).collect();
        let trace = Trace { cells: vec![CellTrace { variant: "fifo".into(), threads: 1, spans }] };
        let whole = timeline_svg(&trace);
        let zoomed = timeline_window_svg(&trace, Window::new(0.5, 0.501).unwrap());
        assert!(whole.matches(r#"class="run""#).count() < 10, "merged when the whole run is shown");
        assert_eq!(zoomed.matches(r#"class="run""#).count(), 10, "1 µs of 1 ms: ten 60 ns tasks, each its own rect");
        assert!(zoomed.contains("500 µs – 501 µs of 1000 µs"), "{zoomed}");
        assert_eq!(Window::new(0.6, 0.5).unwrap_err(), "a timeline window needs 0 ≤ from < to ≤ 1, got 0.6 – 0.5");
        assert!(Window::new(0.0, 1.5).is_err() && Window::new(-0.1, 0.5).is_err());
    }

    #[test]
    fn a_hundred_thousand_tiny_spans_become_a_few_rects() {
        let spans: Vec<Span> = (0..100_000u64).map(|i| span(0, i * 10, i * 10 + 9, SpanKind::Run, "task")).collect();
        let trace = Trace { cells: vec![CellTrace { variant: "fifo".into(), threads: 1, spans }] };
        let svg = timeline_svg(&trace);
        let rects = svg.matches(r#"class="run""#).count();
        assert!((1..=1000).contains(&rects), "{rects} rects");
        assert!(svg.contains("short spans (100% running)"));
    }

    #[test]
    fn tiny_spans_of_different_kinds_merge_too_coloured_by_the_one_that_took_most_time() {
        // A GIL changing hands at every call: 300 ns running, 200 ns waiting, 50 000 times.
        let spans: Vec<Span> = (0..100_000u64)
            .map(|i| match i % 2 {
                0 => span(0, i * 250, i * 250 + 300, SpanKind::Run, "holding the GIL"),
                _ => span(0, i * 250 + 50, i * 250 + 250, SpanKind::Wait, "waiting for the GIL"),
            })
            .collect();
        let trace = Trace { cells: vec![CellTrace { variant: "per-element".into(), threads: 1, spans }] };
        let svg = timeline_svg(&trace);
        let rects = svg.matches("<rect class=").count();
        assert!(rects <= 10, "one lane of sub-pixel spans: {rects} rects");
        assert!(svg.contains(r#"class="run""#) && svg.contains("short spans (60% running, 40% waiting"), "{svg}");
    }

    #[test]
    fn marks_are_ticks_and_an_empty_trace_says_so() {
        let trace = Trace {
            cells: vec![CellTrace {
                variant: "fifo".into(),
                threads: 1,
                spans: vec![span(0, 5, 5, SpanKind::Mark, "submit task 0")],
            }],
        };
        assert!(timeline_svg(&trace).contains(r#"class="mark""#));
        assert!(timeline_svg(&Trace::default()).contains("no spans were recorded"));
    }
}
