//! Per-thread timelines: what each thread did, when.
//!
//! Recording is cheap on the hot path: each thread appends to its own [`Lane`] (a plain `Vec`,
//! no synchronisation) and hands the whole lane to the shared [`Recorder`] once, when the lane is
//! dropped — one lock per thread per run. A disabled recorder makes every call a branch on a bool.
//!
//! [`Trace::to_chrome_json`] writes the Chrome trace-event format ("X" complete events, one
//! process per experiment cell, one thread per worker) that Perfetto and `chrome://tracing` open.

pub mod ambient;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::platform::Instant;
use crate::sync::{lock, Mutex};

/// What a thread was doing during a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpanKind {
    /// Computing.
    Run,
    /// Blocked on another thread, a lock or I/O.
    Wait,
    /// Nothing to do (parked, or waiting for a task).
    Idle,
    /// Looking for work in other workers' queues: the steal attempts of a work-stealing pool.
    Steal,
    /// An instant (start = end), such as a task's submission.
    Mark,
}

impl SpanKind {
    /// The kind's name as traces store it (`run`, `wait`, …).
    pub fn word(self) -> &'static str {
        match self {
            SpanKind::Run => "run",
            SpanKind::Wait => "wait",
            SpanKind::Idle => "idle",
            SpanKind::Steal => "steal",
            SpanKind::Mark => "mark",
        }
    }
}

/// Time by kind of spans merged into one (a trace coarsened, a timeline's sub-pixel block):
/// which kind took most of it, and how it divided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindTimes(Vec<(SpanKind, u64)>);

impl KindTimes {
    pub fn add(&mut self, kind: SpanKind, nanos: u64) {
        match self.0.iter_mut().find(|(seen, _)| *seen == kind) {
            Some((_, total)) => *total = total.saturating_add(nanos),
            None => self.0.push((kind, nanos)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The kind that took most of the time (the first added, on a tie).
    pub fn dominant(&self) -> Option<SpanKind> {
        self.0.iter().rev().max_by_key(|&&(_, time)| time).map(|&(kind, _)| kind)
    }

    /// `60% run, 40% wait`, most first, each kind named by `name`.
    pub fn split(&self, name: impl Fn(SpanKind) -> &'static str) -> String {
        let mut shares = self.0.clone();
        shares.sort_by_key(|&(_, time)| std::cmp::Reverse(time));
        let total = shares.iter().map(|(_, time)| time).sum::<u64>().max(1);
        let shares: Vec<String> =
            shares.iter().map(|&(kind, time)| format!("{}% {}", time * 100 / total, name(kind))).collect();
        shares.join(", ")
    }
}

/// One interval on one thread's timeline, in nanoseconds since the platform epoch; it never
/// ends before it starts (a stored trace that says otherwise does not parse).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredSpan")]
pub struct Span {
    pub thread: usize,
    pub start_ns: u64,
    pub end_ns: u64,
    pub kind: SpanKind,
    pub label: Cow<'static, str>,
}

/// A span as a file holds it, before [`Span`]'s order of start and end is checked.
#[derive(Deserialize)]
struct StoredSpan {
    thread: usize,
    start_ns: u64,
    end_ns: u64,
    kind: SpanKind,
    label: Cow<'static, str>,
}

impl TryFrom<StoredSpan> for Span {
    type Error = String;

    fn try_from(StoredSpan { thread, start_ns, end_ns, kind, label }: StoredSpan) -> Result<Self, String> {
        if end_ns < start_ns {
            return Err(format!("a span of thread {thread} ends ({end_ns} ns) before it starts ({start_ns} ns)"));
        }
        Ok(Span { thread, start_ns, end_ns, kind, label })
    }
}

/// The lane of a shared resource rather than a thread: the GIL's holders and drop requests.
pub const GIL_LANE: usize = 1 << 20;

/// Lanes of event-loop tasks: `TASK_LANE + n` is asyncio's `Task-n`.
pub const TASK_LANE: usize = 1 << 21;

/// How a lane is named in timelines and traces: "thread 3", "GIL", or asyncio's "Task-2".
pub fn lane_name(lane: usize) -> String {
    if lane == GIL_LANE {
        "GIL".to_string()
    } else if lane == ambient::RUNNER_LANE {
        "the run's own thread".to_string()
    } else if lane >= TASK_LANE {
        format!("Task-{}", lane - TASK_LANE)
    } else {
        format!("thread {lane}")
    }
}

/// Collects the spans of one run from all its threads.
#[derive(Debug, Default)]
pub struct Recorder {
    enabled: bool,
    spans: Mutex<Vec<Span>>,
}

impl Recorder {
    pub fn new(enabled: bool) -> Self {
        Self { enabled, spans: Mutex::new(Vec::new()) }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A lane for `thread` (a team member's index, a pool worker's index).
    pub fn lane(&self, thread: usize) -> Lane<'_> {
        Lane { recorder: self, thread, spans: Vec::new() }
    }

    /// Records one span for `thread` straight into the shared list (a lock per call): for
    /// rare events on threads without a [`Lane`] at hand, such as submissions to a pool.
    pub fn record_at(
        &self,
        thread: usize,
        kind: SpanKind,
        label: impl Into<Cow<'static, str>>,
        start: Instant,
        end: Instant,
    ) {
        if self.enabled {
            let (start_ns, end_ns) = (start.nanos_since_epoch(), end.nanos_since_epoch());
            lock(&self.spans).push(Span { thread, start_ns, end_ns, kind, label: label.into() });
        }
    }

    /// Records a span built elsewhere (a thread's buffered spans, flushed).
    pub fn record_span(&self, span: Span) {
        if self.enabled {
            lock(&self.spans).push(span);
        }
    }

    /// Takes everything recorded so far, ordered by thread then start.
    pub fn take(&self) -> Vec<Span> {
        let mut spans = std::mem::take(&mut *lock(&self.spans));
        spans.sort_by_key(|span| (span.thread, span.start_ns));
        spans
    }
}

/// One thread's spans, flushed to the recorder on drop.
pub struct Lane<'r> {
    recorder: &'r Recorder,
    thread: usize,
    spans: Vec<Span>,
}

impl Lane<'_> {
    /// Whether spans are being kept (so labels are worth building).
    pub fn is_enabled(&self) -> bool {
        self.recorder.enabled
    }

    /// Runs `work` and records it as a span of `kind`. The label is only built, and the clock
    /// only read, when recording is on.
    pub fn span<R, L>(&mut self, kind: SpanKind, label: impl FnOnce() -> L, work: impl FnOnce() -> R) -> R
    where
        L: Into<Cow<'static, str>>,
    {
        if !self.recorder.enabled {
            return work();
        }
        let start = Instant::now();
        let result = work();
        self.record(kind, label(), start, Instant::now());
        result
    }

    /// Records an interval the caller timed itself (e.g. waiting for a lock, then holding it).
    pub fn record(&mut self, kind: SpanKind, label: impl Into<Cow<'static, str>>, start: Instant, end: Instant) {
        if self.recorder.enabled {
            let (start_ns, end_ns) = (start.nanos_since_epoch(), end.nanos_since_epoch());
            self.spans.push(Span { thread: self.thread, start_ns, end_ns, kind, label: label.into() });
        }
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if !self.spans.is_empty() {
            lock(&self.recorder.spans).append(&mut self.spans);
        }
    }
}

/// `spans` (ordered by thread, then start) cut down to about `max`: on each lane, runs of
/// spans each shorter than a resolution (and no further apart) become one span of the kind
/// that took most of their time, labelled with how many it stands for and how their time
/// divided — as a drawing merges what is narrower than a pixel. The resolution starts at the
/// spans' whole stretch ÷ `max` and grows fourfold until they fit; longer spans and marks stay
/// as they are. A run that records a span per 300 ns call (a GIL taken back after every native
/// call) would otherwise keep hundreds of thousands.
pub fn coarsened(spans: Vec<Span>, max: usize) -> Vec<Span> {
    if spans.len() <= max {
        return spans;
    }
    let first = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let stretch = spans.iter().map(|s| s.end_ns).max().unwrap_or(0).saturating_sub(first);
    let mut resolution = (stretch / max.max(1) as u64).max(1);
    let mut coarse = merge_short(&spans, resolution);
    while coarse.len() > max && resolution <= stretch {
        resolution *= 4;
        coarse = merge_short(&spans, resolution);
    }
    coarse
}

/// [`coarsened`]'s pass at one resolution.
fn merge_short(spans: &[Span], resolution: u64) -> Vec<Span> {
    let short = |span: &Span| span.kind != SpanKind::Mark && span.end_ns - span.start_ns < resolution;
    let mut out: Vec<Span> = Vec::with_capacity(spans.len() / 2);
    let mut run: Vec<&Span> = Vec::new();
    let flush = |run: &mut Vec<&Span>, out: &mut Vec<Span>| {
        match run.as_slice() {
            [] => {}
            [one] => out.push((*one).clone()),
            many => {
                let mut times = KindTimes::default();
                many.iter().for_each(|span| times.add(span.kind, span.end_ns - span.start_ns));
                out.push(Span {
                    thread: many[0].thread,
                    start_ns: many[0].start_ns,
                    end_ns: many.iter().map(|s| s.end_ns).max().unwrap_or(many[0].end_ns),
                    kind: times.dominant().unwrap_or(many[0].kind),
                    label: format!(
                        "{} short spans ({}), the first: {}",
                        many.len(),
                        times.split(SpanKind::word),
                        many[0].label
                    )
                    .into(),
                });
            }
        }
        run.clear();
    };
    for span in spans {
        let joins = short(span)
            && run.last().is_some_and(|last: &&Span| {
                last.thread == span.thread && span.start_ns.saturating_sub(last.end_ns) < resolution
            });
        if !joins {
            flush(&mut run, &mut out);
        }
        if short(span) {
            run.push(span);
        } else {
            out.push(span.clone());
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The spans of one experiment cell (one variant at one thread count).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellTrace {
    pub variant: String,
    pub threads: usize,
    pub spans: Vec<Span>,
}

/// All recorded cells of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub cells: Vec<CellTrace>,
}

impl Trace {
    /// Chrome trace-event JSON: each cell a process, each thread a thread, times in µs relative
    /// to the earliest span.
    pub fn to_chrome_json(&self) -> serde_json::Value {
        let origin = self.cells.iter().flat_map(|cell| &cell.spans).map(|span| span.start_ns).min().unwrap_or(0);
        let micros = |ns: u64| (ns - origin) as f64 / 1000.0;
        let mut events = Vec::new();
        for (pid, cell) in self.cells.iter().enumerate() {
            events.push(serde_json::json!({
                "name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                "args": { "name": format!("{} · {} thread{}", cell.variant, cell.threads, if cell.threads == 1 { "" } else { "s" }) },
            }));
            let mut lanes: Vec<usize> = cell.spans.iter().map(|span| span.thread).collect();
            lanes.sort_unstable();
            lanes.dedup();
            for lane in lanes {
                events.push(
                    serde_json::json!({ "name": "thread_name", "ph": "M", "pid": pid, "tid": lane, "args": { "name": lane_name(lane) } }),
                );
            }
            for span in &cell.spans {
                events.push(serde_json::json!({
                    "name": span.label, "cat": span.kind, "ph": "X", "pid": pid, "tid": span.thread,
                    "ts": micros(span.start_ns), "dur": (span.end_ns - span.start_ns) as f64 / 1000.0,
                }));
            }
        }
        serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_flush_on_drop_in_thread_then_time_order() {
        let recorder = Recorder::new(true);
        {
            let mut lane = recorder.lane(1);
            assert_eq!(lane.span(SpanKind::Run, || "a", || 7), 7);
            lane.span(SpanKind::Wait, || "b", || ());
        }
        recorder.lane(0).span(SpanKind::Idle, || "c", || ());
        let spans = recorder.take();
        let labels: Vec<_> = spans.iter().map(|s| (s.thread, s.label.as_ref())).collect();
        assert_eq!(labels, [(0, "c"), (1, "a"), (1, "b")]);
        assert!(spans.iter().all(|s| s.end_ns >= s.start_ns));
        assert!(recorder.take().is_empty());
    }

    #[test]
    fn disabled_recorder_records_nothing() {
        let recorder = Recorder::new(false);
        recorder.lane(0).span(SpanKind::Run, || "x", || ());
        assert!(recorder.take().is_empty());
    }

    #[test]
    fn chrome_export_has_process_names_and_complete_events() {
        let span =
            |thread, start_ns, end_ns| Span { thread, start_ns, end_ns, kind: SpanKind::Run, label: "rows".into() };
        let trace = Trace {
            cells: vec![CellTrace {
                variant: "team".into(),
                threads: 2,
                spans: vec![span(0, 5_000, 9_000), span(1, 6_000, 7_500), span(GIL_LANE, 5_000, 6_000)],
            }],
        };
        let json = trace.to_chrome_json();
        let events = json["traceEvents"].as_array().unwrap();
        assert_eq!(events[0]["ph"], "M");
        assert_eq!(events[0]["args"]["name"], "team · 2 threads");
        let names: Vec<_> = events[1..4].iter().map(|e| e["args"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["thread 0", "thread 1", "GIL"], "lanes are named");
        assert_eq!((events[4]["ts"].as_f64(), events[4]["dur"].as_f64()), (Some(0.0), Some(4.0)));
        assert_eq!((events[5]["tid"].as_u64(), events[5]["ts"].as_f64()), (Some(1), Some(1.0)));
        assert_eq!(events[5]["cat"], "run");
    }

    #[test]
    fn coarsened_spans_fit_their_budget_keep_long_spans_and_account_for_what_they_merged() {
        // Two lanes of 100 000 alternating 300 ns run / 200 ns wait spans (a GIL taken back after
        // every native call), a long span and a mark after them on lane 0.
        let mut spans = Vec::new();
        for thread in 0..2 {
            for i in 0..100_000u64 {
                let (kind, length) = if i % 2 == 0 { (SpanKind::Run, 300) } else { (SpanKind::Wait, 200) };
                let start = i * 500;
                spans.push(Span { thread, start_ns: start, end_ns: start + length, kind, label: "held".into() });
            }
        }
        let long =
            Span { thread: 0, start_ns: 50_000_000, end_ns: 60_000_000, kind: SpanKind::Run, label: "long".into() };
        let mark =
            Span { thread: 0, start_ns: 55_000_000, end_ns: 55_000_000, kind: SpanKind::Mark, label: "m".into() };
        spans.extend([long, mark]);
        spans.sort_by_key(|span| (span.thread, span.start_ns));
        let kept = coarsened(spans.clone(), 1_000);
        assert!(kept.len() <= 1_000, "{} spans", kept.len());
        assert!(kept.iter().any(|s| s.label == "long") && kept.iter().any(|s| s.kind == SpanKind::Mark));
        let merged = kept.iter().find(|s| s.label.contains("short spans")).expect("merged spans");
        assert!(merged.label.contains("% run, ") && merged.label.contains("% wait"), "{}", merged.label);
        let lane0: Vec<_> = kept.iter().filter(|s| s.thread == 0).collect();
        assert!(lane0.windows(2).all(|w| w[0].start_ns <= w[1].start_ns), "still in order");
        assert_eq!((lane0[0].start_ns, lane0.iter().map(|s| s.end_ns).max()), (0, Some(60_000_000)));
        assert_eq!(coarsened(spans.clone(), 1_000_000), spans, "within its budget: unchanged");
    }
}
