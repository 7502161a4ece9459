//! The harness-overhead probe, shared by the native benchmark (`lab/benches/harness.rs`) and its
//! browser twin (an ignored test of `lab/tests/wasm.rs` that `cargo xtask bench` runs in a
//! Chromium worker): what the runner itself costs per run — clock reads, cancel polls, progress
//! reports, the digest check, the trace when off, the bookkeeping of samples — as a share of a
//! cell that spins 1 ms and one that spins 10 ms.
//!
//! Each repetition times the same spins called directly, then through the runner (a probe
//! experiment of one cell) at N and at 2N runs: (T(2N) − T(N)) / N is the runner's time per run
//! without its one-off set-up (preparing the workload, the environment), and its excess over
//! the direct spin is the overhead. Repetitions alternate the sides, so the machine's drift
//! lands on both. The table gives the estimate from each side's fastest repetition (noise only
//! adds time, so the minima are the least disturbed), then the median of the per-repetition
//! estimates and their range — a range that goes below zero is the machine's noise.

use std::time::Duration;

use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::Instant;
use conlab_core::stats::Summary;
use conlab_lab::experiment::{
    run_experiment, CancelFlag, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext,
    RunError, RunRequest, Session, VariantSpec, Workload,
};
use serde_json::json;

const REPETITIONS: usize = 15;

/// One cell that spins `ms` per run.
struct Probe(Spinner);
struct ProbeWorkload(Spinner, f64);
struct ProbeCell(Spinner, f64);

impl Experiment for Probe {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "harness-probe",
            title: "a cell that only spins",
            topic: "benchmarks",
            concept: "the runner's own cost",
            teaches: "nothing: it measures the harness",
            params: vec![ParamSpec::float("ms", 1.0, 0.001, 1000.0, "ms", "spin per run")],
            variants: vec![VariantSpec::fixed("spin", "")],
            baseline: "spin",
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(ProbeWorkload(self.0, params.float("ms"))))
    }

    fn claims(&self) -> Vec<Claim> {
        Vec::new()
    }
}

impl Workload for ProbeWorkload {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        1
    }

    fn cell(&self, _: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(ProbeCell(self.0, self.1)))
    }
}

impl Cell for ProbeCell {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        context.check_cancel()?;
        self.0.spin(self.1 * 1e6);
        Ok(1)
    }
}

/// The runner's wall time for `runs` runs of the probe spinning `ms`.
fn through_the_runner(probe: &Probe, ms: f64, runs: usize) -> Duration {
    let request = RunRequest {
        experiment: "harness-probe".into(),
        params: [("ms".to_string(), json!(ms))].into(),
        threads: Some(vec![1]),
        repeat: runs,
        warmup: 0,
        ..RunRequest::default()
    };
    let mut reports = 0;
    let started = Instant::now();
    let session = Session { progress: &mut |_| reports += 1, cancel: &CancelFlag::new() };
    let result = run_experiment(probe, &request, session).expect("the probe runs");
    let elapsed = started.elapsed();
    assert!(result.all_checks_passed && reports >= runs, "every run checked and reported");
    elapsed
}

/// The overhead table, a markdown row per cell length (header first).
pub fn overhead_table() -> Vec<String> {
    let spinner = Spinner::calibrate();
    let probe = Probe(spinner);
    let mut rows = vec![
        format!(
            "harness overhead: the runner's time per run beyond the cell's own, {REPETITIONS} alternated repetitions"
        ),
        "| cell | runs (N) | overhead per run, fastest runs | share, fastest runs | share, median [range] |"
            .to_string(),
        "|---|---|---|---|---|".to_string(),
    ];
    for (ms, runs) in [(1.0, 100), (10.0, 20)] {
        let (mut direct, mut once, mut twice) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPETITIONS {
            let started = Instant::now();
            (0..runs).for_each(|_| spinner.spin(ms * 1e6));
            direct.push(started.elapsed().as_secs_f64() / runs as f64);
            once.push(through_the_runner(&probe, ms, runs).as_secs_f64());
            twice.push(through_the_runner(&probe, ms, 2 * runs).as_secs_f64());
        }
        // Per repetition: noisy, a spike on either side moves it by percent.
        let shares: Vec<f64> =
            (0..REPETITIONS).map(|r| ((twice[r] - once[r]) / runs as f64 - direct[r]) / direct[r] * 100.0).collect();
        // The fastest of each side: a slowdown from the machine only ever adds time, so the
        // minima are the runs it disturbed least (the house rule for laws, here for a benchmark).
        let fastest = |values: &[f64]| values.iter().copied().fold(f64::INFINITY, f64::min);
        let (direct_min, per_run) = (fastest(&direct), (fastest(&twice) - fastest(&once)) / runs as f64);
        let excess = per_run - direct_min;
        let share = spread(&shares);
        rows.push(format!(
            "| {ms} ms | {runs} | {:.0} ns | {:.3}% | {:.3}% [{:.3} – {:.3}] |",
            excess * 1e9,
            excess / direct_min * 100.0,
            share.0,
            share.1,
            share.2
        ));
    }
    rows
}

/// Median and range of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let summary = Summary::of(values).expect("measured values");
    (summary.median, summary.min, summary.max)
}
