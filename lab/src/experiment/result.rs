//! The one result type, shared by the CLI (table, JSON, CSV) and the web lab.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::claims::Lesson;
use super::Value;
use conlab_core::platform::PlatformInfo;
use conlab_core::profile::Profile;
use conlab_core::stats::Summary;
use conlab_core::trace::Trace;

/// Bumped when a field changes meaning, so old JSON files are recognised.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema: u32,
    pub experiment: String,
    pub title: String,
    pub params: BTreeMap<String, Value>,
    pub variants: Vec<String>,
    pub threads: Vec<usize>,
    pub repeat: usize,
    pub warmup: usize,
    pub baseline: String,
    pub work_unit: Option<String>,
    /// Runs lasted a set time: read the metrics, not the times or speedups.
    #[serde(default)]
    pub fixed_duration: bool,
    /// The metric to chart against threads instead of speedup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_metric: Option<String>,
    pub environment: Environment,
    pub cells: Vec<CellResult>,
    /// For each variant swept over thread counts, the serial fraction its speedups imply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fits: Vec<Fit>,
    /// Every run of every cell produced the expected digest.
    pub all_checks_passed: bool,
    /// Wall time of the whole run, set-up included.
    pub wall_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// The experiment's lessons as this run showed them (or did not, or could not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lessons: Vec<Lesson>,
}

impl RunResult {
    pub fn cell(&self, variant: &str, threads: usize) -> Option<&CellResult> {
        self.cells.iter().find(|cell| cell.variant == variant && cell.threads == threads)
    }
}

/// How the problem size relates to the thread count, and so which law explains the speedups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScalingLaw {
    /// Fixed size (strong scaling): speedup = T(1) / T(p), bounded by 1 / f.
    #[default]
    Amdahl,
    /// Size grown with the threads (weak scaling): scaled speedup = rate(p) / rate(1).
    Gustafson,
}

/// A variant's speedups over one thread fitted to a [`ScalingLaw`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub variant: String,
    pub law: ScalingLaw,
    /// The fitted serial fraction f, in [0, 1].
    pub serial_fraction: f64,
    /// Cells above one thread that the fit used.
    pub points: usize,
}

impl Fit {
    /// The law's speedup at `threads` with the fitted f.
    pub fn speedup(&self, threads: f64) -> f64 {
        match self.law {
            ScalingLaw::Amdahl => conlab_core::stats::amdahl_speedup(self.serial_fraction, threads),
            ScalingLaw::Gustafson => conlab_core::stats::gustafson_speedup(self.serial_fraction, threads),
        }
    }
}

/// Where a result was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(flatten)]
    pub platform: PlatformInfo,
    /// conlab's version.
    pub version: String,
    /// `release` or `debug`: debug timings are not worth comparing.
    pub profile: String,
}

impl Environment {
    pub fn current() -> Self {
        Self {
            platform: conlab_core::platform::info(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) { "debug" } else { "release" }.to_string(),
        }
    }
}

/// The outcome of comparing runs with the expected digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub passed: bool,
    pub expected: String,
    /// The first wrong digest, or the expected one when all matched.
    pub actual: String,
}

/// One variant at one thread count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub variant: String,
    pub threads: usize,
    /// Seconds per run, in the order measured (warm-up runs excluded).
    pub samples: Vec<f64>,
    /// Statistics of `samples`; `None` when the cell was skipped.
    pub summary: Option<Summary>,
    /// Work units per second at the median.
    pub throughput: Option<f64>,
    /// Baseline variant's median / this median.
    pub speedup_vs_baseline: Option<f64>,
    /// This variant's 1-thread median / this median.
    pub speedup_vs_one_thread: Option<f64>,
    /// speedup_vs_one_thread / threads.
    pub efficiency: Option<f64>,
    pub check: Option<Check>,
    /// Why the cell could not run on this platform (e.g. no worker pool in the browser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why the output was not checked (the variant is wrong on purpose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
    /// Measurements beyond time, by name, summarised over the timed runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Metric>,
    /// Latency distributions by name, each merged over the cell's timed runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latencies: BTreeMap<String, Latency>,
    /// Curves by name: y against x, each point the median over the cell's timed runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub curves: BTreeMap<String, Curve>,
    /// What a run reported in words — a misuse caught (a self-deadlock, a broken barrier, a
    /// lost wake-up), who did what: the sentences of the first timed run that reported any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// How many of the timed runs reported findings.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub finding_runs: usize,
    /// The profile a profiler took of the timed runs' own frames, merged (experiments whose
    /// workers run the Python model under a profiler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Runs timed together per sample, when one run is too short for the clock (each sample,
    /// metric and the median are still per run).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub runs_per_sample: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

fn one() -> usize {
    1
}

fn is_one(count: &usize) -> bool {
    *count == 1
}

impl CellResult {
    /// A cell that did not run, and why.
    pub fn skipped(variant: &str, threads: usize, why: String) -> Self {
        Self {
            variant: variant.into(),
            threads,
            samples: Vec::new(),
            summary: None,
            throughput: None,
            speedup_vs_baseline: None,
            speedup_vs_one_thread: None,
            efficiency: None,
            check: None,
            skipped: Some(why),
            unchecked: None,
            metrics: BTreeMap::new(),
            latencies: BTreeMap::new(),
            curves: BTreeMap::new(),
            findings: Vec::new(),
            finding_runs: 0,
            profile: None,
            runs_per_sample: 1,
        }
    }
}

/// A curve a cell measured (latency against offered load, throughput over time): its axes and
/// points, and marks on the x axis (a predicted saturation point).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The x axis, with its unit ("offered load (requests/s)").
    pub x: String,
    /// The y axis, with its unit ("p99 latency (ms)").
    pub y: String,
    /// x drawn on a log scale (sizes that span decades).
    #[serde(default, skip_serializing_if = "is_false")]
    pub log_x: bool,
    /// y drawn on a log scale (latencies that span decades).
    pub log_y: bool,
    /// By increasing x.
    pub points: Vec<CurvePoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<CurveMark>,
}

/// One x of a curve: the median of the runs' y there, and their range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub x: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// A labelled place on a curve's x axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveMark {
    pub label: String,
    pub x: f64,
}

/// A measurement recorded once per run, over a cell's timed runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// One value per timed run, in the order measured (repetition i of every cell ran close
    /// in time: ratios between cells are best taken per repetition).
    pub values: Vec<f64>,
    /// Set when the metric is a time read off the clock and its median is shorter than two
    /// ticks of that clock: this many ns. The reading then only says "less than this" — a
    /// browser's 5 µs clock reads most short waits as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_clock_resolution_ns: Option<f64>,
}

impl Metric {
    /// Summarises `values` (at least one).
    pub fn of(unit: &str, values: &[f64]) -> Option<Self> {
        let summary = conlab_core::stats::Summary::of(values)?;
        Some(Self {
            unit: unit.into(),
            median: summary.median,
            min: summary.min,
            max: summary.max,
            values: values.to_vec(),
            below_clock_resolution_ns: None,
        })
    }

    /// [`Metric::of`] for times in `unit` measured on a clock whose shortest readable time
    /// (two ticks) is `floor_ns`.
    pub fn of_time(unit: super::TimeUnit, values: &[f64], floor_ns: f64) -> Option<Self> {
        let mut metric = Self::of(unit.label(), values)?;
        metric.below_clock_resolution_ns = (metric.median * unit.nanoseconds() < floor_ns).then_some(floor_ns);
        Some(metric)
    }
}

/// A latency distribution: how many were measured, and the latency at each of
/// [`Latency::PERCENTILES`] (read from a log-bucketed histogram, so within 12.5% of the
/// exact value, and never above the largest seen).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub percentiles: Vec<Percentile>,
    /// Two ticks of the clock that measured them, in ns: shorter latencies are not resolved.
    #[serde(default)]
    pub clock_resolution_ns: f64,
}

/// The latency at or below which `percent`% of the measurements fall.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    pub percent: f64,
    pub nanoseconds: f64,
    /// Shorter than two ticks of the clock: the reading only says "less than
    /// [`Latency::clock_resolution_ns`]".
    #[serde(default, skip_serializing_if = "is_false")]
    pub below_clock_resolution: bool,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

impl Latency {
    /// The percentiles kept: the body of the distribution and its tail, to the maximum.
    pub const PERCENTILES: [f64; 11] = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

    /// `None` when nothing was measured; `floor_ns` is two ticks of the clock that measured it.
    pub fn of(histogram: &conlab_core::stats::LogHistogram, floor_ns: f64) -> Option<Self> {
        (histogram.count() > 0).then(|| Self {
            count: histogram.count(),
            percentiles: Self::PERCENTILES
                .iter()
                .map(|&percent| {
                    let nanoseconds = histogram.quantile(percent / 100.0) as f64;
                    Percentile { percent, nanoseconds, below_clock_resolution: nanoseconds < floor_ns }
                })
                .collect(),
            clock_resolution_ns: floor_ns,
        })
    }

    /// The latency at `percent`, if it is one of [`Latency::PERCENTILES`].
    pub fn at(&self, percent: f64) -> Option<f64> {
        self.percentiles.iter().find(|p| p.percent == percent).map(|p| p.nanoseconds)
    }
}
