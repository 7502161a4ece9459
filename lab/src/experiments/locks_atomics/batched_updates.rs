//! `batched-updates`: a shared counter updated every 1, 10, 100, 1000 local operations, or once
//! at the end — throughput against how far behind a reader is.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    ScalingLaw, VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{self, run_team};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::{lock, Mutex};

pub struct BatchedUpdates;

/// The variants: how many local operations each shared update carries (`None`: one at the end).
const BATCHES: [(&str, Option<u64>); 5] = [
    ("every-1", Some(1)),
    ("every-10", Some(10)),
    ("every-100", Some(100)),
    ("every-1000", Some(1000)),
    ("once", None),
];

/// How often the reader looks at the counter.
const SAMPLE_EVERY: Duration = Duration::from_micros(100);

const LAG_P50: &str = "reader lag p50";
const LAG_MAX: &str = "reader lag max";

impl Experiment for BatchedUpdates {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "batched-updates",
            title: "Batching shared updates: throughput vs staleness",
            topic: super::NAME,
            concept: "batching; the cost of sharing vs the freshness of shared data",
            teaches: "Two extremes the lab shows elsewhere: every thread adds each operation to one shared atomic \
                      counter (lost-update's fetch-add: always exact, and every add moves the counter's cache line \
                      to the adding core), or each counts locally and adds its total once at the end \
                      (parallel-sum's partial sums: no sharing at all, and nobody sees a number until the end). \
                      Between them, each thread adds what it has counted every B operations. Throughput climbs \
                      steeply from B = 1 and then flattens — once the shared add is rare, the local work is the \
                      cost — while a reader looking at the counter every 100 µs sees it further and further behind \
                      the work done: its lag, in operations, grows with B (up to threads × B, and to everything for \
                      `once`). The knee of the throughput curve is the batch to pick. Each operation does \
                      `work_ns` of local work; the total must come out exact.",
            params: vec![
                ParamSpec::int(
                    "operations",
                    5_000_000,
                    1_000,
                    500_000_000,
                    "per thread",
                    "operations each thread counts",
                ),
                ParamSpec::float("work_ns", 5.0, 0.0, 100_000.0, "ns", "local work per operation"),
            ],
            variants: BATCHES
                .iter()
                .map(|&(name, batch)| match batch {
                    Some(1) => VariantSpec::sweep(name, "a shared fetch_add per operation"),
                    Some(_) => VariantSpec::sweep(name, "count locally, add to the shared counter every B operations"),
                    None => VariantSpec::sweep(name, "count locally, add once at the end"),
                })
                .collect(),
            baseline: "every-1",
            work_unit: Some("operations"),
            chart_metric: Some(LAG_P50),
            quick: &["operations=1000000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Counting {
            operations: params.int("operations") as u64,
            work_ns: params.float("work_ns"),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "batching pays: at 2 threads, adding to the shared counter every 100 operations does ≥ 2× the \
                 operations per second of every one (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let gain = facts.fastest_rate("every-100", 2)? / facts.fastest_rate("every-1", 2)?;
                    verdict(
                        gain >= 2.0,
                        format!("every-100 over every-1 at 2 threads: {gain:.2}×"),
                        "the local work outweighs the shared add (lower `work_ns`), or a core was busy",
                    )
                },
            ),
            Claim::new(
                "and then the curve flattens: every-1000 gains under 1.3× over every-100 at 2 threads (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let gain = facts.fastest_rate("every-1000", 2)? / facts.fastest_rate("every-100", 2)?;
                    verdict(
                        gain < 1.3,
                        format!("every-1000 over every-100 at 2 threads: {gain:.2}×"),
                        "another program slowed the every-100 runs",
                    )
                },
            ),
            Claim::new(
                "the price is staleness: at 2 threads a reader's median lag grows with the batch — every-1000's is \
                 ≥ 10× every-10's (median runs)",
                |facts| {
                    let (ten, thousand) = (lag(facts, "every-10")?, lag(facts, "every-1000")?);
                    verdict(
                        thousand >= 10.0 * ten.max(1.0),
                        format!(
                            "reader's median lag at 2 threads: every-10 {ten:.0}, every-1000 {thousand:.0} operations"
                        ),
                        "the reader looked too seldom to see the counter move (raise `operations`)",
                    )
                },
            ),
        ]
    }
}

/// The median run's median lag of the reader at 2 threads, in operations.
fn lag(facts: &Facts<'_>, variant: &str) -> Result<f64, Verdict> {
    facts.metric(variant, 2, LAG_P50)
}

struct Counting {
    operations: u64,
    work_ns: f64,
    spinner: Spinner,
}

impl Workload for Counting {
    /// Each cell's own: every thread counts `operations`.
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The work grows with the threads, so speedups are ratios of operations per second.
    fn scaling_law(&self) -> ScalingLaw {
        ScalingLaw::Gustafson
    }

    /// Every cell's digest is the shortfall of the shared total (0 when nothing was lost).
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let batch = BATCHES.iter().find(|(name, _)| *name == variant).and_then(|(_, batch)| *batch);
        Ok(Box::new(CountingCell { work: self, batch, threads }))
    }
}

struct CountingCell<'a> {
    work: &'a Counting,
    /// Operations per shared update; `None`: one update at the end.
    batch: Option<u64>,
    threads: usize,
}

impl Cell for CountingCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn work_units(&self) -> Option<f64> {
        Some((self.work.operations * self.threads as u64) as f64)
    }

    /// The workers count; one more thread, the reader, wakes every [`SAMPLE_EVERY`] and
    /// compares the shared counter with the work done (each worker publishes its own count
    /// on a line of its own: reading the shared counter first, the lag is never negative).
    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Counting { operations, work_ns, spinner } = *self.work;
        let batch = self.batch.unwrap_or(u64::MAX);
        let shared = CachePadded::new(AtomicU64::new(0));
        let done: Vec<CachePadded<AtomicU64>> = (0..self.threads).map(|_| CachePadded::default()).collect();
        let working = AtomicU64::new(self.threads as u64);
        let lags = Mutex::new(LogHistogram::default());
        run_team(self.threads + 1, |member| {
            if member.index == self.threads {
                *lock(&lags) = read_while(&working, &shared, &done);
                return;
            }
            let mine = &done[member.index];
            let mut pending = 0;
            context.repeat(operations, |operation| {
                spinner.spin(work_ns);
                pending += 1;
                mine.store(operation + 1, Ordering::Relaxed);
                if pending == batch {
                    shared.fetch_add(pending, Ordering::Relaxed);
                    pending = 0;
                }
            });
            shared.fetch_add(pending, Ordering::Relaxed);
            working.fetch_sub(1, Ordering::Release);
        })?;
        context.check_cancel()?;
        let lags = lags.into_inner().unwrap_or_else(|p| p.into_inner());
        if lags.count() > 0 {
            context.record(LAG_P50, "operations", lags.quantile(0.5) as f64);
            context.record(LAG_MAX, "operations", lags.max() as f64);
        }
        Ok(operations * self.threads as u64 - shared.load(Ordering::Relaxed))
    }
}

/// The reader: every [`SAMPLE_EVERY`] until the workers are done, the work done minus what the
/// shared counter says.
fn read_while(working: &AtomicU64, shared: &AtomicU64, done: &[CachePadded<AtomicU64>]) -> LogHistogram {
    let mut lags = LogHistogram::default();
    loop {
        platform::sleep(SAMPLE_EVERY);
        if working.load(Ordering::Acquire) == 0 {
            return lags;
        }
        let seen = shared.load(Ordering::Relaxed);
        let counted: u64 = done.iter().map(|d| d.load(Ordering::Relaxed)).sum();
        lags.record(counted.saturating_sub(seen));
    }
}
