//! A run's profile: every cell's recorded trace sampled as a profiler would sample its workers
//! ([`conlab_core::profile::timeline`]) — the spans each worker was in as its frames — merged
//! into one profile whose roots are the cells' threads, and the lines the CLI prints under its
//! table.

use conlab_core::profile::{timeline, Profile, View};
use std::collections::BTreeSet;

use conlab_core::trace::{lane_name, SpanKind, Trace, GIL_LANE};

use crate::experiment::RunResult;

/// The coarsest period `--profile` samples a trace at (10 kHz, the top of the samplers' range).
const COARSEST_NS: f64 = 100_000.0;
/// Samples the shortest traced run gets at least (down to a period of 1 µs): sampling after
/// the run costs the run nothing, so a short run is sampled finely.
const SAMPLES_PER_RUN: f64 = 2_000.0;

/// The run's profile, each thread named `variant ×threads · thread i`: the profiles a profiler
/// took of the cells' own frames if the experiment runs one, otherwise every traced cell's
/// spans sampled, all with one period. The second value says which.
pub fn profile_of(result: &RunResult) -> (Profile, &'static str) {
    let mut own = Profile::default();
    for cell in &result.cells {
        if let Some(profile) = &cell.profile {
            let mut named = profile.clone();
            for stack in &mut named.stacks {
                stack.thread = format!("{} ×{} · {}", cell.variant, cell.threads, stack.thread);
            }
            own.merge(&named);
        }
    }
    if !own.stacks.is_empty() {
        return (own, "the workers' own frames, sampled while they ran");
    }
    let traced = result.trace.as_ref().map(trace_profile).unwrap_or_default();
    (traced, "the spans each worker was in, sampled from the traced runs")
}

/// Every traced cell's spans sampled with one period.
fn trace_profile(trace: &Trace) -> Profile {
    let spans = |cell: &conlab_core::trace::CellTrace| {
        let timed = cell.spans.iter().filter(|s| s.kind != SpanKind::Mark && s.thread != GIL_LANE);
        let (first, last) = timed.fold((u64::MAX, 0), |(a, b), s| (a.min(s.start_ns), b.max(s.end_ns)));
        let lanes: BTreeSet<usize> = cell.spans.iter().map(|s| s.thread).collect();
        (last.saturating_sub(first) as f64, lanes.len() as f64)
    };
    let cells: Vec<(f64, f64)> = trace.cells.iter().map(spans).filter(|(stretch, _)| *stretch > 0.0).collect();
    let shortest = cells.iter().map(|(stretch, _)| *stretch).fold(f64::INFINITY, f64::min);
    let widest = cells.iter().map(|(stretch, lanes)| stretch * lanes / timeline::MAX_READINGS).fold(0.0, f64::max);
    let period_ns = (shortest / SAMPLES_PER_RUN).clamp(1_000.0, COARSEST_NS).max(widest);
    let mut profile = Profile::default();
    for cell in &trace.cells {
        let name = |lane: usize| format!("{} ×{} · {}", cell.variant, cell.threads, lane_name(lane));
        profile.merge(&timeline::sample_spans(&cell.spans, 1e9 / period_ns, &name));
    }
    profile
}

/// What the CLI prints under its table: how the profile was taken, and the frames with the most
/// self time in each view.
pub fn profile_lines(profile: &Profile, source: &str) -> Vec<String> {
    let (wall, cpu) = (profile.samples(View::Wall), profile.samples(View::OnCpu));
    if wall == 0 {
        return vec!["profile: the run recorded no spans to sample".to_string()];
    }
    let mut lines = vec![format!(
        "profile of {source}: every {} — {wall} samples, {cpu} of them on a CPU ({:.0}%)",
        conlab_core::units::format_seconds(profile.period_ns / 1e9),
        cpu as f64 * 100.0 / wall as f64
    )];
    for (view, name) in [(View::OnCpu, "on-CPU"), (View::Wall, "wall-clock")] {
        let top = top_frames(profile, view, 5);
        if !top.is_empty() {
            lines.push(format!("  most self time, {name}: {}", top.join(", ")));
        }
    }
    lines
}

/// The `count` innermost frames with the most samples in `view`, as `name 34%`.
fn top_frames(profile: &Profile, view: View, count: usize) -> Vec<String> {
    let total = profile.samples(view).max(1) as f64;
    let mut leaves: Vec<(String, u64)> = Vec::new();
    for (path, samples) in profile.paths(view) {
        let Some(leaf) = path.last().filter(|_| path.len() > 1) else { continue };
        match leaves.iter_mut().find(|(name, _)| name == leaf) {
            Some((_, total)) => *total += samples,
            None => leaves.push((leaf.clone(), samples)),
        }
    }
    leaves.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    leaves.iter().take(count).map(|(name, samples)| format!("{name} {:.0}%", *samples as f64 * 100.0 / total)).collect()
}
