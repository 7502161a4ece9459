//! Profiling any experiment: a recorded trace sampled at a rate. At every tick each lane's
//! stack is the spans that cover that moment, outermost first (a span inside another is its
//! callee), their labels the frames; the innermost span's kind says whether the lane was
//! running or waiting. This is what a sampler reading a published "current span" would see,
//! taken from the spans after the run, so it costs the run only its tracing.

use crate::trace::{Span, SpanKind, GIL_LANE};

use super::{Profile, ProfileBuilder, ThreadState};

/// At most this many lane readings per profile: a long run sampled fast gets a coarser grid.
pub const MAX_READINGS: f64 = 2_000_000.0;

/// Samples `spans` every `1 / rate_hz` seconds from the first span's start to the last one's
/// end; lanes are named by `lane_name`. The GIL's lane (a resource, not a thread) and marks
/// are left out.
pub fn sample_spans(spans: &[Span], rate_hz: f64, lane_name: &dyn Fn(usize) -> String) -> Profile {
    let timed: Vec<&Span> = spans.iter().filter(|s| s.kind != SpanKind::Mark && s.thread != GIL_LANE).collect();
    let (Some(first), Some(last)) = (timed.iter().map(|s| s.start_ns).min(), timed.iter().map(|s| s.end_ns).max())
    else {
        return Profile { period_ns: 1e9 / rate_hz, ..Profile::default() };
    };
    let mut lanes: Vec<usize> = timed.iter().map(|s| s.thread).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let stretch = (last - first) as f64;
    let mut period = 1e9 / rate_hz.max(1e-3);
    if stretch / period * lanes.len() as f64 > MAX_READINGS {
        period = stretch * lanes.len() as f64 / MAX_READINGS;
    }
    let ticks = (stretch / period).floor() as u64;
    let mut builder = ProfileBuilder::with_frames(Vec::new(), period);
    for lane in lanes {
        let mut own: Vec<&Span> = timed.iter().copied().filter(|s| s.thread == lane).collect();
        own.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
        let name = lane_name(lane);
        let (mut next, mut active): (usize, Vec<&Span>) = (0, Vec::new());
        for tick in 0..ticks {
            let at = first + ((tick as f64 + 0.5) * period) as u64;
            while next < own.len() && own[next].start_ns <= at {
                active.push(own[next]);
                next += 1;
            }
            active.retain(|s| s.end_ns > at);
            let Some(innermost) = active.last() else { continue };
            let state = match innermost.kind {
                SpanKind::Run | SpanKind::Steal => ThreadState::Running,
                _ => ThreadState::Waiting,
            };
            let frames = active.iter().map(|s| builder.frame(&s.label)).collect();
            builder.add(&name, frames, state, 1);
        }
    }
    builder.finish()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::profile::View;
    use crate::trace::lane_name;

    fn span(thread: usize, start_ns: u64, end_ns: u64, kind: SpanKind, label: &'static str) -> Span {
        Span { thread, start_ns, end_ns, kind, label: label.into() }
    }

    #[test]
    fn nested_spans_become_stacks_and_waits_drop_out_of_the_cpu_view() {
        // Thread 0: a 100 µs task, its last 40 µs inside a nested "merge"; thread 1 waits 50 µs.
        let spans = [
            span(0, 1_000, 101_000, SpanKind::Run, "task"),
            span(0, 61_000, 101_000, SpanKind::Run, "merge"),
            span(1, 1_000, 51_000, SpanKind::Wait, "waiting for a lock"),
            span(1, 5_000, 5_000, SpanKind::Mark, "a mark"),
            span(GIL_LANE, 1_000, 101_000, SpanKind::Run, "held by thread 0"),
        ];
        let profile = sample_spans(&spans, 1_000_000.0, &lane_name);
        assert_eq!(profile.samples(View::Wall), 150, "{profile:?}");
        assert_eq!(profile.samples(View::OnCpu), 100);
        assert!((profile.self_share("merge", View::OnCpu) - 0.4).abs() < 0.02);
        assert!((profile.total_share("task", View::OnCpu) - 1.0).abs() < 1e-9);
        assert!((profile.thread_share("thread 1", View::Wall) - 1.0 / 3.0).abs() < 0.02);
        assert!(!profile.frames.iter().any(|f| f.contains("held by") || f == "a mark"));
    }

    #[test]
    fn a_long_trace_sampled_fast_gets_a_coarser_grid() {
        let spans = [span(0, 0, 10_000_000_000, SpanKind::Run, "ten seconds")];
        let profile = sample_spans(&spans, 10_000.0, &lane_name);
        assert!(profile.samples(View::Wall) <= MAX_READINGS as u64);
        assert!(profile.period_ns >= 1e5);
        assert!(sample_spans(&[], 100.0, &lane_name).stacks.is_empty());
    }
}
