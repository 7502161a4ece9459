//! The experiment registry and the contract every experiment follows.
//!
//! An [`Experiment`] describes itself ([`ExperimentInfo`]: id, what it teaches, typed
//! parameters, variants) and turns validated [`Params`] into a [`Workload`]. The workload builds
//! one [`Cell`] per (variant, thread count) — everything a cell needs that must not be timed,
//! such as a rayon pool — and a cell's [`Cell::run`] is the timed part. The [`runner`] owns
//! repeats, interleaving, statistics, correctness checks, progress and cancellation, so an
//! experiment file is thin glue over a kernel.

pub mod claims;
pub mod params;
pub mod result;
pub mod runner;
pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use claims::{not_testable, verdict, Claim, Facts, Lesson, Verdict};
pub use params::{ParamError, ParamKind, ParamSpec, Params, Value};
pub use result::{
    CellResult, Check, Curve, CurveMark, CurvePoint, Environment, Fit, Latency, Metric, Percentile, RunResult,
    ScalingLaw,
};
pub use runner::{run, run_experiment, Progress, RunRequest, Session, DEFAULT_REPEAT, REPEAT_RANGE, WARMUP_RANGE};

use conlab_core::platform::{self, Instant, PlatformError};
use conlab_core::profile::Profile;
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicBool, Ordering};
use conlab_core::sync::{lock, Arc, Mutex};
use conlab_core::trace::Recorder;

/// A way of running an experiment's work (`seq`, `team`, `rayon`, …).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantSpec {
    pub id: &'static str,
    pub help: &'static str,
    /// Runs at each requested thread count; otherwise once, at the thread count it chooses.
    pub sweeps_threads: bool,
    /// Why this variant's output is not checked (it is wrong on purpose, e.g. a data race).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<&'static str>,
}

impl VariantSpec {
    /// A variant run at every requested thread count.
    pub const fn sweep(id: &'static str, help: &'static str) -> Self {
        Self { id, help, sweeps_threads: true, unchecked: None }
    }

    /// A variant run once, at the thread count it chooses itself.
    pub const fn fixed(id: &'static str, help: &'static str) -> Self {
        Self { id, help, sweeps_threads: false, unchecked: None }
    }

    /// Marks the variant's output as wrong on purpose, and says why.
    pub const fn unchecked(self, why: &'static str) -> Self {
        Self { unchecked: Some(why), ..self }
    }
}

/// What an experiment is, for catalogues, forms and `conlab describe`. An experiment writes the
/// fields that say what it is and what differs from the defaults, then
/// `..ExperimentInfo::default()`: no work unit, times (not metrics) as the result, speedup as the
/// chart, no timeline by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExperimentInfo {
    pub id: &'static str,
    pub title: &'static str,
    /// Catalogue group ("kernels & patterns", "threads & I/O", …).
    pub topic: &'static str,
    /// The book concept it makes measurable ("ThreadPoolExecutor", "the GIL", …).
    pub concept: &'static str,
    /// One paragraph on what running it teaches.
    pub teaches: &'static str,
    pub params: Vec<ParamSpec>,
    pub variants: Vec<VariantSpec>,
    /// The variant speedups are measured against.
    pub baseline: &'static str,
    /// What one unit of work is, for throughput ("pixels", "elements").
    pub work_unit: Option<&'static str>,
    /// Runs last a set time and the results are the recorded metrics, not the run times.
    pub fixed_duration: bool,
    /// The metric to chart against threads instead of speedup.
    pub chart_metric: Option<&'static str>,
    /// The per-thread timeline is part of the lesson: front ends record it unless told not to.
    pub shows_timeline: bool,
    /// The "quick" preset: `name=value` settings (as after `--set`) that shrink the problem so
    /// a run finishes in well under a second — a first look, a slow machine, the test suites.
    pub quick: &'static [&'static str],
}

impl ExperimentInfo {
    pub fn variant(&self, id: &str) -> Option<&VariantSpec> {
        self.variants.iter().find(|variant| variant.id == id)
    }

    /// The quick preset's settings, unvalidated (as a front end would send them).
    pub fn quick_params(&self) -> BTreeMap<String, serde_json::Value> {
        params::parse_assignments(self.quick.iter().copied()).expect("quick presets are written name=value")
    }
}

/// The result of one run, compared with the expected value for the correctness check.
pub type Digest = u64;

/// An experiment in the registry.
pub trait Experiment: Send + Sync {
    fn info(&self) -> ExperimentInfo;
    /// Builds the workload (inputs, the expected digest) for validated parameters.
    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError>;
    /// What the experiment teaches, as claims every run checks ([`claims`]).
    fn claims(&self) -> Vec<Claim>;
}

/// An experiment's inputs, ready to be run by any variant.
pub trait Workload {
    /// Units of work in one run (pixels, elements), for throughput.
    fn work_units(&self) -> Option<f64>;
    /// The digest every correct run must produce.
    fn expected(&self) -> Digest;
    /// Everything (variant, threads) needs that is not timed. The runner has already checked
    /// `threads` against the platform's limit; a cell that picks its own thread count (one per
    /// task, say) checks it with `platform::check_team_size`, so the cell is marked skipped.
    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError>;
    /// What one unit of work is, when it depends on the parameters (otherwise the info's).
    fn work_unit(&self) -> Option<&'static str> {
        None
    }
    /// Whether the problem grows with the threads (Gustafson) or stays fixed (Amdahl).
    fn scaling_law(&self) -> ScalingLaw {
        ScalingLaw::Amdahl
    }
}

/// One variant at one thread count, ready to run.
pub trait Cell {
    /// Threads this cell really runs on (a `seq` cell: 1; thread-per-task: the task count).
    fn threads(&self) -> usize;
    /// One timed run.
    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError>;
    /// The digest this cell must produce, when its input differs from the workload's (a
    /// problem grown with the thread count).
    fn expected(&self) -> Option<Digest> {
        None
    }
    /// Units of work in one run of this cell, when they differ from the workload's.
    fn work_units(&self) -> Option<f64> {
        None
    }
}

/// A cancel request shared between the front end and the threads of a run.
///
/// The flag is one byte of (in wasm, shared) memory: the web page sets it through
/// [`CancelFlag::address`] while the worker is busy inside a run.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Where the flag lives in linear memory (for a page writing it with `Atomics.store`).
    pub fn address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

/// What a cell's threads see during one run: cancellation, the clock, the trace, and where
/// to record measurements beyond the run's time.
pub struct RunContext<'a> {
    cancel: &'a CancelFlag,
    trace: &'a Recorder,
    metrics: Mutex<Vec<Measurement>>,
    latencies: Mutex<Vec<(&'static str, LogHistogram)>>,
    curves: Mutex<Vec<CurveRecord>>,
    findings: Mutex<Vec<String>>,
    profiles: Mutex<Vec<Profile>>,
}

/// A curve an experiment draws — y against x, one line per cell — named with its axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurveSpec {
    pub name: &'static str,
    /// The x axis with its unit.
    pub x: &'static str,
    /// The y axis with its unit.
    pub y: &'static str,
    pub log_x: bool,
    pub log_y: bool,
}

/// What a run recorded on a curve.
#[derive(Clone, Debug, PartialEq)]
pub enum CurveRecord {
    Point { curve: CurveSpec, x: f64, y: f64 },
    Mark { curve: CurveSpec, label: String, x: f64 },
}

/// One value a run recorded with [`RunContext::record`] or [`RunContext::record_time`].
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
    /// Set for a time read off the clock: the unit `value` is in.
    pub timed_in: Option<TimeUnit>,
}

/// The units a measured time is shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Nanoseconds,
    Microseconds,
    Milliseconds,
}

impl TimeUnit {
    pub fn label(self) -> &'static str {
        match self {
            TimeUnit::Nanoseconds => "ns",
            TimeUnit::Microseconds => "µs",
            TimeUnit::Milliseconds => "ms",
        }
    }

    /// Nanoseconds in one of this unit.
    pub fn nanoseconds(self) -> f64 {
        match self {
            TimeUnit::Nanoseconds => 1.0,
            TimeUnit::Microseconds => 1e3,
            TimeUnit::Milliseconds => 1e6,
        }
    }
}

/// How often long-running work looks at the cancel flag, at most.
pub const CANCEL_POLL: Duration = Duration::from_millis(20);

/// Steps of [`RunContext::repeat`] between two looks at the cancel flag: a relaxed load per
/// 256 steps costs nothing measurable, and 256 of the longest steps any experiment takes
/// (~100 µs) stay well inside the ~50 ms cancel budget.
pub const STEPS_PER_CANCEL_CHECK: u64 = 256;

impl<'a> RunContext<'a> {
    pub fn new(cancel: &'a CancelFlag, trace: &'a Recorder) -> Self {
        Self {
            cancel,
            trace,
            metrics: Mutex::new(Vec::new()),
            latencies: Mutex::new(Vec::new()),
            curves: Mutex::new(Vec::new()),
            findings: Mutex::new(Vec::new()),
            profiles: Mutex::new(Vec::new()),
        }
    }

    /// Records a measurement of this run (throughput, a fairness index, a count…); the runner
    /// summarises each name over a cell's timed runs.
    pub fn record(&self, name: &'static str, unit: &'static str, value: f64) {
        lock(&self.metrics).push(Measurement { name, unit, value, timed_in: None });
    }

    /// Records a time this run read off the clock (a wait, a latency percentile), shown in
    /// `unit`. The runner flags a median shorter than two ticks of the clock as unresolved, so
    /// a browser's 5 µs clock never prints a wait as a measured 0.
    pub fn record_time(&self, name: &'static str, unit: TimeUnit, nanoseconds: f64) {
        lock(&self.metrics).push(Measurement {
            name,
            unit: unit.label(),
            value: nanoseconds / unit.nanoseconds(),
            timed_in: Some(unit),
        });
    }

    /// The measurements recorded so far.
    pub fn take_metrics(&self) -> Vec<Measurement> {
        std::mem::take(&mut *lock(&self.metrics))
    }

    /// Records a distribution of latencies in nanoseconds (an item's time in a queue, a lock
    /// wait…); the runner merges each name's histograms over a cell's timed runs into a
    /// [`Latency`] of percentiles, which the lab draws as a percentile plot.
    pub fn record_latency(&self, name: &'static str, nanoseconds: &LogHistogram) {
        lock(&self.latencies).push((name, nanoseconds.clone()));
    }

    /// The latency distributions recorded so far.
    pub fn take_latencies(&self) -> Vec<(&'static str, LogHistogram)> {
        std::mem::take(&mut *lock(&self.latencies))
    }

    /// Records a point of `curve` (the runner keeps, per x, the median of the runs' y).
    pub fn record_point(&self, curve: CurveSpec, x: f64, y: f64) {
        lock(&self.curves).push(CurveRecord::Point { curve, x, y });
    }

    /// Marks a place on `curve`'s x axis (a predicted saturation point), drawn with its label.
    pub fn mark(&self, curve: CurveSpec, label: impl Into<String>, x: f64) {
        lock(&self.curves).push(CurveRecord::Mark { curve, label: label.into(), x });
    }

    /// The curve points and marks recorded so far.
    pub fn take_curves(&self) -> Vec<CurveRecord> {
        std::mem::take(&mut *lock(&self.curves))
    }

    /// Reports in one sentence something the run saw that numbers do not say — which thread
    /// deadlocked on what, the error a misuse raised; the runner keeps each distinct sentence.
    pub fn report(&self, finding: impl Into<String>) {
        lock(&self.findings).push(finding.into());
    }

    /// The findings reported so far.
    pub fn take_findings(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.findings))
    }

    /// Records a profile a profiler took of this run's own frames (the Python model's calls);
    /// the runner merges a cell's timed runs' profiles into the cell's.
    pub fn record_profile(&self, profile: Profile) {
        lock(&self.profiles).push(profile);
    }

    /// The profiles recorded so far.
    pub fn take_profiles(&self) -> Vec<Profile> {
        std::mem::take(&mut *lock(&self.profiles))
    }

    /// Forgets everything recorded so far — measurements, latencies, findings, profiles, spans:
    /// the runner throws away a batch of runs too short to time, and what they recorded with it.
    pub fn discard_recorded(&self) {
        drop((self.take_metrics(), self.take_latencies(), self.take_curves(), self.take_findings()));
        drop((self.take_profiles(), self.trace.take()));
    }

    /// `Err(Cancelled)` once cancellation was requested; call it every few ms of work.
    pub fn check_cancel(&self) -> Result<(), RunError> {
        if self.cancel.is_cancelled() {
            Err(RunError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub fn trace(&self) -> &'a Recorder {
        self.trace
    }

    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Runs `step(i)` for i in 0..count, looking at the cancel flag every
    /// [`STEPS_PER_CANCEL_CHECK`] steps; returns false if it stopped early because of a cancel.
    pub fn repeat(&self, count: u64, mut step: impl FnMut(u64)) -> bool {
        for i in 0..count {
            if i % STEPS_PER_CANCEL_CHECK == 0 && self.check_cancel().is_err() {
                return false;
            }
            step(i);
        }
        true
    }

    /// Sleeps like blocking I/O would, waking every [`CANCEL_POLL`] to honour cancellation.
    pub fn sleep(&self, duration: Duration) -> Result<(), RunError> {
        let end =
            Instant::now().nanos_since_epoch().saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        loop {
            self.check_cancel()?;
            let now = Instant::now().nanos_since_epoch();
            if now >= end {
                return Ok(());
            }
            platform::sleep(Duration::from_nanos(end - now).min(CANCEL_POLL));
        }
    }
}

/// Why a run did not produce a result.
#[derive(Debug, Clone, PartialEq)]
pub enum RunError {
    UnknownExperiment {
        id: String,
        known: Vec<&'static str>,
    },
    Param(ParamError),
    Platform(PlatformError),
    Cancelled,
    /// The run could not finish (an event loop stalled, say), with why.
    Failed(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownExperiment { id, known } => {
                write!(f, "unknown experiment `{id}`; known experiments are {}", known.join(", "))
            }
            Self::Param(error) => write!(f, "{error}"),
            Self::Platform(error) => write!(f, "{error}"),
            Self::Cancelled => write!(f, "cancelled"),
            Self::Failed(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<ParamError> for RunError {
    fn from(error: ParamError) -> Self {
        Self::Param(error)
    }
}

/// An event loop's failure ends the run: stopped from outside is a cancel, anything else
/// (a stall, say) fails it with the reason.
impl From<conlab_core::aio::AioError> for RunError {
    fn from(error: conlab_core::aio::AioError) -> Self {
        match error {
            conlab_core::aio::AioError::Stopped => Self::Cancelled,
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<PlatformError> for RunError {
    fn from(error: PlatformError) -> Self {
        Self::Platform(error)
    }
}

/// Every experiment, in catalogue order.
pub fn registry() -> Vec<&'static dyn Experiment> {
    crate::experiments::all().collect()
}

/// Runs `body` on a team of `threads` (as [`platform::run_team`]); once every member has
/// finished, the first error a member returned (a cancel, a wait that timed out) fails the run.
pub(crate) fn run_members(
    threads: usize,
    body: impl Fn(platform::TeamMember) -> Result<(), RunError> + Sync,
) -> Result<(), RunError> {
    let failure = Mutex::new(None);
    platform::run_team(threads, |member| {
        if let Err(error) = body(member) {
            lock(&failure).get_or_insert(error);
        }
    })?;
    failure.into_inner().unwrap_or_else(|p| p.into_inner()).map_or(Ok(()), Err)
}

/// The experiment with this id, or an error listing the known ids.
pub fn find(id: &str) -> Result<&'static dyn Experiment, RunError> {
    registry().iter().copied().find(|experiment| experiment.info().id == id).ok_or_else(|| {
        RunError::UnknownExperiment {
            id: id.to_string(),
            known: registry().iter().map(|experiment| experiment.info().id).collect(),
        }
    })
}

/// The default thread sweep: 1, 2, 4, … up to the hardware threads, which are always included.
pub fn default_threads() -> Vec<usize> {
    default_threads_up_to(platform::max_team_threads())
}

/// The default thread sweep for a team limit of `team_threads` (a worker pool still starting).
pub fn default_threads_up_to(team_threads: usize) -> Vec<usize> {
    let limit = platform::hardware_threads().min(team_threads).max(1);
    let mut threads: Vec<usize> =
        std::iter::successors(Some(1usize), |t| t.checked_mul(2)).take_while(|t| *t <= limit).collect();
    if threads.last() != Some(&limit) {
        threads.push(limit);
    }
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_ids_are_unique_and_lookups_work() {
        let ids: Vec<_> = registry().iter().map(|e| e.info().id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len());
        assert_eq!(find("mandelbrot").unwrap().info().id, "mandelbrot");
        let error = find("nope").err().unwrap().to_string();
        assert_eq!(error, format!("unknown experiment `nope`; known experiments are {}", ids.join(", ")));
        assert!(
            error.contains("mandelbrot, parallel-sum, scaling, map-reduce, pipeline, io-fanout"),
            "topic by topic: {error}"
        );
    }

    #[test]
    fn the_catalogue_lists_each_topic_once_with_all_its_experiments_together() {
        let topics: Vec<_> = registry().iter().map(|e| e.info().topic).collect();
        let mut seen: Vec<&str> = Vec::new();
        for topic in topics {
            if seen.last() != Some(&topic) {
                assert!(!seen.contains(&topic), "topic `{topic}` appears in two places of the catalogue");
                seen.push(topic);
            }
        }
        assert_eq!(seen.len(), crate::experiments::TOPICS.len(), "one name per topic folder: {seen:?}");
    }

    #[test]
    fn every_experiment_is_described_and_its_defaults_validate() {
        for experiment in registry() {
            let info = experiment.info();
            assert!(info.teaches.len() > 80, "{}: teach something", info.id);
            assert!(
                !info.id.is_empty() && !info.concept.is_empty() && !info.title.is_empty() && !info.topic.is_empty(),
                "{}",
                info.id
            );
            assert!(!info.variants.is_empty(), "{}: variants", info.id);
            assert!(info.variant(info.baseline).is_some(), "{}: baseline must be a variant", info.id);
            assert!(Params::validate(&info.params, &Default::default()).is_ok());
            assert!(!info.quick.is_empty(), "{}: a quick preset", info.id);
            if let Err(error) = Params::validate(&info.params, &info.quick_params()) {
                panic!("{}: quick preset: {error}", info.id);
            }
            for spec in &info.params {
                assert!(spec.parse(&serde_json::to_value(&spec.default).unwrap()).is_ok(), "{}.{}", info.id, spec.name);
            }
        }
    }

    #[test]
    fn default_sweep_starts_at_one_and_ends_at_the_hardware() {
        let threads = default_threads();
        assert_eq!(threads[0], 1);
        assert_eq!(*threads.last().unwrap(), platform::hardware_threads().min(platform::max_team_threads()));
        assert!(threads.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn repeat_runs_every_step_or_stops_at_the_next_check_after_a_cancel() {
        let (cancel, recorder) = (CancelFlag::new(), Recorder::new(false));
        let context = RunContext::new(&cancel, &recorder);
        let mut seen = Vec::new();
        assert!(context.repeat(5, |i| seen.push(i)));
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        let mut steps = 0;
        let finished = context.repeat(10_000, |i| {
            steps += 1;
            if i == 10 {
                cancel.cancel();
            }
        });
        assert!(!finished);
        assert_eq!(steps, STEPS_PER_CANCEL_CHECK, "stops at the first check after the cancel");
    }

    #[test]
    fn cancelled_sleep_returns_promptly() {
        let cancel = CancelFlag::new();
        let recorder = Recorder::new(false);
        let context = RunContext::new(&cancel, &recorder);
        cancel.cancel();
        let start = Instant::now();
        assert_eq!(context.sleep(Duration::from_secs(5)), Err(RunError::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
