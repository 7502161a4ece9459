//! Runs an experiment: variants × thread counts × repeats → a [`RunResult`].
//!
//! Cells are measured **interleaved**: after each cell's warm-up runs, repetition r runs every
//! cell once before repetition r + 1 starts, starting one cell further along each time so no
//! cell always follows the same neighbour. On a shared, noisy machine (speed drifts ±20% within
//! 100 ms) drift then lands on all cells alike instead of on whichever ran last. Every run's
//! digest is checked; the trace, when asked for, records each cell's last run only.
//!
//! A sample lasts at least [`TICKS_PER_SAMPLE`] ticks of the clock: a cell whose run is shorter
//! (a browser rounds `performance.now()` to 5–100 µs) is timed several runs at a time — the
//! batch grows whenever a sample comes out short, never shrinks — and each sample is the
//! batch's time per run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::claims;
use super::result::{
    CellResult, Curve, CurveMark, CurvePoint, Environment, Fit, Latency, Metric, RunResult, ScalingLaw, SCHEMA_VERSION,
};
use super::{
    default_threads, find, CancelFlag, Cell, Check, CurveRecord, CurveSpec, Digest, Experiment, ExperimentInfo,
    Measurement, ParamError, Params, RunContext, RunError, TimeUnit,
};
use conlab_core::platform::{max_team_threads, sleep, timer_resolution, Instant, CODE_WARMS_UP};
use conlab_core::profile::Profile;
use conlab_core::stats::{amdahl_fit, efficiency, gustafson_fit, speedup, LogHistogram, Summary};
use conlab_core::trace::{ambient, coarsened, CellTrace, Recorder, Trace};

/// Allowed repeats and warm-ups.
pub const REPEAT_RANGE: (usize, usize) = (1, 1000);

/// Timed runs per cell unless asked otherwise: the fewest whose median interval reaches 95%
/// (six runs: [min, max] holds the true median with 96.875% confidence; five: 93.75%).
pub const DEFAULT_REPEAT: usize = 6;
pub const WARMUP_RANGE: (usize, usize) = (0, 100);

/// A sample spans at least this many clock ticks, so rounding to a tick costs it at most 1%.
pub const TICKS_PER_SAMPLE: u32 = 100;

/// The most runs timed together as one sample.
const MAX_RUNS_PER_SAMPLE: usize = 1 << 20;

/// Where code warms up ([`CODE_WARMS_UP`]): warm-up runs go on until this many in a row gain
/// nothing, …
const STEADY_RUNS: usize = 2;
/// … but no more than this many beyond the asked warm-ups …
const MAX_EXTRA_WARMUPS: usize = 12;
/// … each after this pause, in which a compiler thread can have a core.
const COMPILER_PAUSE: Duration = Duration::from_millis(25);

/// What to run, as a front end received it (unvalidated).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRequest {
    pub experiment: String,
    pub params: BTreeMap<String, serde_json::Value>,
    /// `None`: all variants.
    pub variants: Option<Vec<String>>,
    /// `None`: [`default_threads`].
    pub threads: Option<Vec<usize>>,
    pub repeat: usize,
    pub warmup: usize,
    pub trace: bool,
    /// Profile the traced runs: the platform records each team member and every time a thread
    /// blocks, beside the experiment's own spans, so every experiment has a profile
    /// ([`conlab_core::trace::ambient`]). Implies nothing unless `trace` is set.
    pub profile: bool,
}

impl Default for RunRequest {
    fn default() -> Self {
        Self {
            experiment: String::new(),
            params: BTreeMap::new(),
            variants: None,
            threads: None,
            repeat: DEFAULT_REPEAT,
            warmup: 1,
            trace: false,
            profile: false,
        }
    }
}

/// How far a run has come, reported before each timed or warm-up run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub variant: String,
    pub threads: usize,
    pub warmup: bool,
}

/// The front end's side of a run: where progress goes and the cancel flag it may set.
pub struct Session<'a> {
    pub progress: &'a mut dyn FnMut(&Progress),
    pub cancel: &'a CancelFlag,
}

/// `value` if it lies in `range`, otherwise the error naming `param` and the range.
pub(super) fn check_range(param: &str, value: usize, range: (usize, usize)) -> Result<usize, ParamError> {
    (range.0..=range.1).contains(&value).then_some(value).ok_or_else(|| range_error(param, value, range))
}

/// `param` got `got`, which is no integer in `min..=max`.
pub(super) fn range_error(param: &str, got: impl std::fmt::Display, (min, max): (usize, usize)) -> ParamError {
    ParamError { param: param.into(), message: format!("expected an integer from {min} to {max}, got `{got}`") }
}

pub(super) fn validated_variants(
    info: &ExperimentInfo,
    requested: Option<&Vec<String>>,
) -> Result<Vec<&'static str>, ParamError> {
    let Some(requested) = requested else {
        return Ok(info.variants.iter().map(|variant| variant.id).collect());
    };
    if requested.is_empty() {
        return Err(ParamError { param: "variant".into(), message: "choose at least one variant".into() });
    }
    requested
        .iter()
        .map(|name| {
            info.variant(name).map(|variant| variant.id).ok_or_else(|| {
                let known: Vec<_> = info.variants.iter().map(|variant| variant.id).collect();
                ParamError {
                    param: "variant".into(),
                    message: format!("unknown variant `{name}`; {} has {}", info.id, known.join(", ")),
                }
            })
        })
        .collect()
}

/// The requested thread counts (the default sweep when none), each in `1..=max`, sorted.
pub(super) fn validated_threads(requested: Option<&Vec<usize>>, max: usize) -> Result<Vec<usize>, ParamError> {
    let mut threads = requested.cloned().unwrap_or_else(default_threads);
    if threads.is_empty() {
        return Err(ParamError { param: "threads".into(), message: "choose at least one thread count".into() });
    }
    for &count in &threads {
        check_range("threads", count, (1, max))?;
    }
    threads.sort_unstable();
    threads.dedup();
    Ok(threads)
}

struct LiveCell<'w> {
    variant: &'static str,
    unchecked: Option<&'static str>,
    cell: Box<dyn Cell + 'w>,
    samples: Vec<f64>,
    wrong_digest: Option<Digest>,
    /// name → (unit, one value per timed run, the time unit if it is a time off the clock)
    metrics: BTreeMap<&'static str, (&'static str, Vec<f64>, Option<TimeUnit>)>,
    /// name → the histograms of every timed run, merged
    latencies: BTreeMap<&'static str, LogHistogram>,
    /// name → the curve's axes, every timed run's y by x, and its marks
    curves: BTreeMap<&'static str, LiveCurve>,
    /// The first reporting run's findings, at most [`MAX_FINDINGS`] distinct ones.
    findings: Vec<String>,
    /// Timed runs that reported findings.
    finding_runs: usize,
    /// The timed runs' profiles, merged.
    profile: Option<Profile>,
    /// Runs timed together per sample (grown by [`timed_sample`]).
    runs_per_sample: usize,
}

/// A curve while its runs come in.
struct LiveCurve {
    spec: CurveSpec,
    /// (x, the y of every run that measured it), in first-seen order
    points: Vec<(f64, Vec<f64>)>,
    marks: Vec<CurveMark>,
}

impl LiveCurve {
    fn add(curves: &mut BTreeMap<&'static str, LiveCurve>, record: CurveRecord) {
        let spec = match &record {
            CurveRecord::Point { curve, .. } | CurveRecord::Mark { curve, .. } => *curve,
        };
        let curve =
            curves.entry(spec.name).or_insert_with(|| LiveCurve { spec, points: Vec::new(), marks: Vec::new() });
        match record {
            CurveRecord::Point { x, y, .. } => match curve.points.iter_mut().find(|(at, _)| *at == x) {
                Some((_, ys)) => ys.push(y),
                None => curve.points.push((x, vec![y])),
            },
            CurveRecord::Mark { label, x, .. } => {
                if !curve.marks.iter().any(|mark| mark.label == label && mark.x == x) {
                    curve.marks.push(CurveMark { label, x });
                }
            }
        }
    }

    fn result(&self) -> Curve {
        let mut points: Vec<CurvePoint> = self
            .points
            .iter()
            .map(|(x, ys)| {
                let mut ys = ys.clone();
                ys.sort_by(f64::total_cmp);
                let middle = ys.len() / 2;
                let median = if ys.len() % 2 == 1 { ys[middle] } else { (ys[middle - 1] + ys[middle]) / 2.0 };
                CurvePoint { x: *x, median, min: ys[0], max: ys[ys.len() - 1] }
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        Curve {
            x: self.spec.x.into(),
            y: self.spec.y.into(),
            log_x: self.spec.log_x,
            log_y: self.spec.log_y,
            points,
            marks: self.marks.clone(),
        }
    }
}

/// Findings kept per cell: one run's account, not a wall of sentences.
const MAX_FINDINGS: usize = 8;

/// Spans kept per traced cell (see [`coarsened`]): a timeline is a few thousand pixels wide,
/// and a trace travels to the page and into exports; a run that recorded more keeps its
/// short spans merged, each saying how many it stands for.
const MAX_SPANS_PER_CELL: usize = 20_000;

struct Skipped {
    variant: &'static str,
    threads: usize,
    why: String,
}

/// A request's settings, validated.
struct Plan {
    params: Params,
    variants: Vec<&'static str>,
    threads: Vec<usize>,
}

/// Checks every setting of `request` against `info` and the runner's ranges.
fn plan(info: &ExperimentInfo, request: &RunRequest) -> Result<Plan, RunError> {
    let params = Params::validate(&info.params, &request.params)?;
    let variants = validated_variants(info, request.variants.as_ref())?;
    let threads = validated_threads(request.threads.as_ref(), max_team_threads())?;
    check_range("repeat", request.repeat, REPEAT_RANGE)?;
    check_range("warmup", request.warmup, WARMUP_RANGE)?;
    Ok(Plan { params, variants, threads })
}

/// Whether [`run`] would accept `request`: the error it would give before running, if any.
pub fn check(request: &RunRequest) -> Result<(), RunError> {
    plan(&find(&request.experiment)?.info(), request).map(|_| ())
}

/// Finds the registered experiment `request` names and runs it with [`run_experiment`].
pub fn run(request: &RunRequest, session: Session<'_>) -> Result<RunResult, RunError> {
    run_experiment(find(&request.experiment)?, request, session)
}

/// Validates `request` against `experiment`, runs it and summarises the measurements.
pub fn run_experiment(
    experiment: &dyn Experiment,
    request: &RunRequest,
    session: Session<'_>,
) -> Result<RunResult, RunError> {
    let wall = Instant::now();
    let info = experiment.info();
    let Plan { params, variants, threads } = plan(&info, request)?;

    let workload = experiment.prepare(&params)?;
    let expected = workload.expected();
    let mut live = Vec::new();
    let mut skipped = Vec::new();
    for &variant in &variants {
        let spec = info.variant(variant).expect("validated variant");
        let counts = if spec.sweeps_threads { threads.clone() } else { vec![1] };
        for count in counts {
            if session.cancel.is_cancelled() {
                return Err(RunError::Cancelled);
            }
            match workload.cell(variant, count) {
                Ok(cell) => live.push(LiveCell {
                    variant,
                    unchecked: spec.unchecked,
                    cell,
                    samples: Vec::new(),
                    wrong_digest: None,
                    metrics: BTreeMap::new(),
                    latencies: BTreeMap::new(),
                    curves: BTreeMap::new(),
                    findings: Vec::new(),
                    finding_runs: 0,
                    profile: None,
                    runs_per_sample: 1,
                }),
                Err(RunError::Platform(error)) => {
                    skipped.push(Skipped { variant, threads: count, why: error.to_string() })
                }
                Err(error) => return Err(error),
            }
        }
    }

    let tick = timer_resolution();
    let shortest_sample = tick * TICKS_PER_SAMPLE;
    let total = live.len() * (request.warmup + request.repeat);
    let mut done = 0;
    let mut traces = Vec::new();
    // One run (or batch) of `cell`, `done` runs into the whole; its time per run.
    let mut measure =
        |cell: &mut LiveCell<'_>, done: usize, warmup: bool, record: bool| -> Result<Duration, RunError> {
            (session.progress)(&Progress {
                done,
                total,
                variant: cell.variant.into(),
                threads: cell.cell.threads(),
                warmup,
            });
            let recorder = Recorder::new(record);
            let context = RunContext::new(session.cancel, &recorder);
            context.check_cancel()?;
            let elapsed = if record && request.profile {
                ambient::with_ambient(&recorder, || timed_sample(cell, &context, expected, shortest_sample))?
            } else {
                timed_sample(cell, &context, expected, shortest_sample)?
            };
            if !warmup {
                cell.samples.push(elapsed.as_secs_f64() / cell.runs_per_sample as f64);
                for Measurement { name, unit, value, timed_in } in mean_per_name(context.take_metrics()) {
                    cell.metrics.entry(name).or_insert((unit, Vec::new(), timed_in)).1.push(value);
                }
                for (name, histogram) in context.take_latencies() {
                    cell.latencies.entry(name).or_default().merge(&histogram);
                }
                for record in context.take_curves() {
                    LiveCurve::add(&mut cell.curves, record);
                }
                for profile in context.take_profiles() {
                    cell.profile.get_or_insert_with(Profile::default).merge(&profile);
                }
                let findings = context.take_findings();
                if !findings.is_empty() {
                    cell.finding_runs += 1;
                    if cell.findings.is_empty() {
                        for finding in findings {
                            if cell.findings.len() < MAX_FINDINGS && !cell.findings.contains(&finding) {
                                cell.findings.push(finding);
                            }
                        }
                    }
                }
            }
            if record {
                traces.push(CellTrace {
                    variant: cell.variant.into(),
                    threads: cell.cell.threads(),
                    spans: coarsened(recorder.take(), MAX_SPANS_PER_CELL),
                });
            }
            Ok(elapsed / cell.runs_per_sample as u32)
        };
    for cell in &mut live {
        let mut fastest = Duration::MAX;
        for _ in 0..request.warmup {
            fastest = fastest.min(measure(cell, done, true, false)?);
            done += 1;
        }
        if CODE_WARMS_UP && request.warmup > 0 {
            warm_until_steady(|| measure(cell, done, true, false), fastest)?;
        }
    }
    for repetition in 0..request.repeat {
        let last = repetition + 1 == request.repeat;
        let count = live.len();
        for offset in 0..count {
            measure(&mut live[(repetition + offset) % count], done, false, last && request.trace)?;
            done += 1;
        }
    }
    (session.progress)(&Progress { done: total, total, variant: String::new(), threads: 0, warmup: false });

    let mut cells: Vec<CellResult> = live
        .iter()
        .map(|cell| {
            measured_cell(
                cell,
                expected,
                cell.cell.work_units().or(workload.work_units()),
                2.0 * tick.as_nanos() as f64,
            )
        })
        .chain(skipped.into_iter().map(|skip| CellResult::skipped(skip.variant, skip.threads, skip.why)))
        .collect();
    let law = workload.scaling_law();
    let fits = if info.fixed_duration {
        Vec::new()
    } else {
        add_speedups(&mut cells, info.baseline);
        fits(&cells, &info, law)
    };
    let all_checks_passed = cells.iter().filter_map(|cell| cell.check.as_ref()).all(|check| check.passed);

    let mut result = RunResult {
        schema: SCHEMA_VERSION,
        experiment: info.id.into(),
        title: info.title.into(),
        params: params.values().clone(),
        variants: variants.iter().map(|v| v.to_string()).collect(),
        threads,
        repeat: request.repeat,
        warmup: request.warmup,
        baseline: info.baseline.into(),
        work_unit: workload.work_unit().or(info.work_unit).map(Into::into),
        fixed_duration: info.fixed_duration,
        chart_metric: info.chart_metric.map(Into::into),
        environment: Environment::current(),
        cells,
        fits,
        all_checks_passed,
        wall_seconds: wall.elapsed().as_secs_f64(),
        trace: request.trace.then_some(Trace { cells: traces }),
        lessons: Vec::new(),
    };
    result.lessons = claims::evaluate(&experiment.claims(), &result);
    Ok(result)
}

/// Runs the cell `runs` times back to back, checking every run's digest; the time they took.
fn time_runs(
    cell: &mut LiveCell<'_>,
    context: &RunContext,
    runs: usize,
    expected: Digest,
) -> Result<Duration, RunError> {
    let expected = cell.cell.expected().unwrap_or(expected);
    let start = Instant::now();
    for _ in 0..runs {
        let digest = cell.cell.run(context)?;
        if digest != expected && cell.wrong_digest.is_none() {
            cell.wrong_digest = Some(digest);
        }
    }
    Ok(start.elapsed())
}

/// Extra warm-up runs for code that speeds up over its first runs ([`CODE_WARMS_UP`]): runs
/// `run` until [`STEADY_RUNS`] in a row are no more than 5% faster than the fastest so far
/// (each after a short pause that leaves a core to the browser's compiler threads), at most
/// [`MAX_EXTRA_WARMUPS`] times.
fn warm_until_steady(
    mut run: impl FnMut() -> Result<Duration, RunError>,
    mut fastest: Duration,
) -> Result<(), RunError> {
    let mut steady = 0;
    for _ in 0..MAX_EXTRA_WARMUPS {
        sleep(COMPILER_PAUSE);
        let elapsed = run()?;
        if elapsed.as_secs_f64() < 0.95 * fastest.as_secs_f64() {
            steady = 0;
        } else {
            steady += 1;
            if steady == STEADY_RUNS {
                break;
            }
        }
        fastest = fastest.min(elapsed);
    }
    Ok(())
}

/// Times a batch of the cell's runs per sample; while a batch lasts less than `shortest` (and
/// is not yet the largest) the batch grows and is timed again, and what the short batch
/// recorded is thrown away with it. The time of the batch kept.
fn timed_sample(
    cell: &mut LiveCell<'_>,
    context: &RunContext,
    expected: Digest,
    shortest: Duration,
) -> Result<Duration, RunError> {
    let mut elapsed = time_runs(cell, context, cell.runs_per_sample, expected)?;
    while elapsed < shortest && cell.runs_per_sample < MAX_RUNS_PER_SAMPLE {
        // Aim 20% past the target from what the batch read; a batch that read 0 grows tenfold.
        let factor = if elapsed.is_zero() {
            10.0
        } else {
            (1.2 * shortest.as_secs_f64() / elapsed.as_secs_f64()).clamp(2.0, 10.0)
        };
        cell.runs_per_sample = ((cell.runs_per_sample as f64 * factor).ceil() as usize).min(MAX_RUNS_PER_SAMPLE);
        context.check_cancel()?;
        // Only the timed batch's measurements belong to the sample.
        context.discard_recorded();
        elapsed = time_runs(cell, context, cell.runs_per_sample, expected)?;
    }
    Ok(elapsed)
}

/// A batch's measurements, one per run, as one value per name: their mean, in first-seen order.
fn mean_per_name(measurements: Vec<Measurement>) -> Vec<Measurement> {
    let mut sums: Vec<(Measurement, usize)> = Vec::new();
    for measurement in measurements {
        match sums.iter_mut().find(|(seen, _)| seen.name == measurement.name) {
            Some((sum, count)) => {
                sum.value += measurement.value;
                *count += 1;
            }
            None => sums.push((measurement, 1)),
        }
    }
    sums.into_iter().map(|(sum, count)| Measurement { value: sum.value / count as f64, ..sum }).collect()
}

/// `clock_floor_ns`: two ticks of the clock, the shortest time it resolves.
fn measured_cell(cell: &LiveCell<'_>, expected: Digest, work_units: Option<f64>, clock_floor_ns: f64) -> CellResult {
    let expected = cell.cell.expected().unwrap_or(expected);
    let summary = Summary::of(&cell.samples);
    // A variant wrong on purpose did not do the work it was given (lost updates, a corrupted
    // stack): a rate or a speedup would read as a result, so only its times are shown.
    let work_units = work_units.filter(|_| cell.unchecked.is_none());
    let throughput = summary.as_ref().zip(work_units).and_then(|(s, units)| (s.median > 0.0).then(|| units / s.median));
    let check = cell.unchecked.is_none().then(|| Check {
        passed: cell.wrong_digest.is_none(),
        expected: format!("{expected:#018x}"),
        actual: format!("{:#018x}", cell.wrong_digest.unwrap_or(expected)),
    });
    CellResult {
        variant: cell.variant.into(),
        threads: cell.cell.threads(),
        samples: cell.samples.clone(),
        summary,
        throughput,
        speedup_vs_baseline: None,
        speedup_vs_one_thread: None,
        efficiency: None,
        check,
        skipped: None,
        unchecked: cell.unchecked.map(Into::into),
        metrics: cell
            .metrics
            .iter()
            .filter_map(|(name, (unit, values, timed_in))| {
                let metric = match timed_in {
                    Some(time_unit) => Metric::of_time(*time_unit, values, clock_floor_ns),
                    None => Metric::of(unit, values),
                };
                Some((name.to_string(), metric?))
            })
            .collect(),
        latencies: cell
            .latencies
            .iter()
            .filter_map(|(name, histogram)| Some((name.to_string(), Latency::of(histogram, clock_floor_ns)?)))
            .collect(),
        curves: cell.curves.iter().map(|(name, curve)| (name.to_string(), curve.result())).collect(),
        findings: cell.findings.clone(),
        finding_runs: cell.finding_runs,
        profile: cell.profile.clone(),
        runs_per_sample: cell.runs_per_sample,
    }
}

/// Fills the speedup columns from the medians: vs the baseline variant's single run, and vs the
/// same variant at 1 thread. Where cells did different amounts of work (a problem grown with
/// the threads) the ratios are of throughputs, which for equal work are the ratios of times.
/// A variant wrong on purpose gets none: its speed is not a result.
fn add_speedups(cells: &mut [CellResult], baseline: &str) {
    let rate = |cell: &CellResult| {
        let time_rate = || cell.summary.as_ref().and_then(|s| (s.median > 0.0).then(|| 1.0 / s.median));
        cell.unchecked.is_none().then(|| cell.throughput.or_else(time_rate)).flatten()
    };
    let baseline_rate = cells.iter().filter(|c| c.variant == baseline).find_map(rate);
    let one_thread: BTreeMap<String, f64> =
        cells.iter().filter(|c| c.threads == 1).filter_map(|c| Some((c.variant.clone(), rate(c)?))).collect();
    for cell in cells.iter_mut() {
        let Some(rate) = rate(cell) else { continue };
        cell.speedup_vs_baseline = baseline_rate.and_then(|base| speedup(rate, base));
        cell.speedup_vs_one_thread = one_thread.get(&cell.variant).and_then(|one| speedup(rate, *one));
        cell.efficiency = cell.speedup_vs_one_thread.map(|s| efficiency(s, cell.threads));
    }
}

/// The serial fraction of each thread-sweeping variant measured above one thread.
fn fits(cells: &[CellResult], info: &ExperimentInfo, law: ScalingLaw) -> Vec<Fit> {
    info.variants
        .iter()
        .filter(|variant| variant.sweeps_threads && variant.unchecked.is_none())
        .filter_map(|variant| {
            let points: Vec<(usize, f64)> = cells
                .iter()
                .filter(|c| c.variant == variant.id && c.threads > 1)
                .filter_map(|c| Some((c.threads, c.speedup_vs_one_thread?)))
                .collect();
            let serial_fraction = match law {
                ScalingLaw::Amdahl => amdahl_fit(&points),
                ScalingLaw::Gustafson => gustafson_fit(&points),
            }?;
            Some(Fit { variant: variant.id.into(), law, serial_fraction, points: points.len() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `warm_until_steady` over `times` (ms), the asked warm-up having read `first`; how
    /// many extra runs it made.
    fn extra_runs(first: u64, times: &[u64]) -> usize {
        let mut runs = 0;
        warm_until_steady(
            || {
                runs += 1;
                Ok(Duration::from_millis(times[(runs - 1).min(times.len() - 1)]))
            },
            Duration::from_millis(first),
        )
        .unwrap();
        runs
    }

    #[test]
    fn warm_up_goes_on_while_runs_get_faster_and_stops_when_two_gain_nothing() {
        // A worker's code tiering up: 100 → 60 → 40 ms, then steady.
        assert_eq!(extra_runs(100, &[60, 40, 39, 41]), 4);
        // Already steady: two runs that gain nothing.
        assert_eq!(extra_runs(40, &[40, 42]), 2);
        // A gain resets the count.
        assert_eq!(extra_runs(100, &[99, 90, 90, 80, 80, 80]), 6);
        // Never steady: capped.
        let ever_faster: Vec<u64> = (0..40).map(|i| 1_000_000 >> i.min(19)).collect();
        assert_eq!(extra_runs(2_000_000, &ever_faster), MAX_EXTRA_WARMUPS);
    }
}
