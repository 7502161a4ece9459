//! `lost-update`: `counter += 1` from N threads, unsynchronised vs `fetch_add` vs a mutex.

use std::hint::black_box;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::platform::run_team;
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::{lock, Mutex};

pub struct LostUpdate;

impl Experiment for LostUpdate {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "lost-update",
            title: "Lost updates: counter += 1 from many threads",
            topic: super::NAME,
            concept: "race conditions; threading.Lock around a shared counter",
            teaches: "counter += 1 is three steps — read, add, write. Two threads that read the same value both write \
                      value + 1, and one increment vanishes. The racy variant does exactly that (an atomic load, then \
                      an atomic store: no undefined behaviour, just the race), optionally widening the window between \
                      read and write; it loses updates as soon as two threads run at once. fetch_add makes the \
                      read-modify-write one indivisible step, a mutex makes the whole section exclusive — both lose \
                      nothing, at a price the times show. With one thread nothing is lost: races need parallelism (or \
                      preemption at the wrong moment).",
            params: vec![
                ParamSpec::int("increments", 1_000_000, 1, 50_000_000, "per thread", "increments each thread performs"),
                ParamSpec::int(
                    "gap",
                    0,
                    0,
                    10_000,
                    "iterations",
                    "busy work between the read and the write (widens the race window)",
                ),
            ],
            variants: vec![
                VariantSpec::sweep("racy", "load, (gap), store: a read-modify-write split in three")
                    .unchecked("racy on purpose"),
                VariantSpec::sweep("fetch-add", "one atomic read-modify-write"),
                VariantSpec::sweep("mutex", "std::sync::Mutex around the increment"),
            ],
            baseline: "fetch-add",
            chart_metric: Some("lost"),
            quick: &["increments=20000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Counting { increments: params.count("increments"), gap: params.count("gap") }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("racy loses updates once 2 threads run at once: some run at 2 threads loses one", |facts| {
                facts.cores(2)?;
                let most = facts.metric_max("racy", 2, "lost updates")?;
                verdict(
                    most > 0.0,
                    format!("racy at 2 threads: up to {most:.0} updates lost in a run"),
                    "the two threads never overlapped (too few `increments` to outlast starting the second)",
                )
            }),
            Claim::new("with one thread racy loses nothing: races need parallelism", |facts| {
                let most = facts.metric_max("racy", 1, "lost updates")?;
                verdict(most == 0.0, format!("racy at 1 thread: {most:.0} lost"), "a bug in the counter")
            }),
        ]
    }
}

struct Counting {
    increments: usize,
    gap: usize,
}

impl Workload for Counting {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every cell's digest is its number of lost updates.
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(CountingCell { work: self, variant: variant.to_string(), threads }))
    }
}

struct CountingCell<'a> {
    work: &'a Counting,
    variant: String,
    threads: usize,
}

impl Cell for CountingCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Counting { increments, gap } = *self.work;
        let counter = AtomicU64::new(0);
        let mutex = Mutex::new(0u64);
        let variant = self.variant.as_str();
        run_team(self.threads, |_| {
            context.repeat(increments as u64, |_| match variant {
                "racy" => {
                    let seen = counter.load(Ordering::Relaxed);
                    for i in 0..gap {
                        black_box(i);
                    }
                    counter.store(seen + 1, Ordering::Relaxed);
                }
                "fetch-add" => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                _ => *lock(&mutex) += 1,
            });
        })?;
        context.check_cancel()?;
        let expected = (increments * self.threads) as u64;
        let actual = if variant == "mutex" { *lock(&mutex) } else { counter.load(Ordering::Relaxed) };
        let lost = expected - actual;
        context.record("expected", "", expected as f64);
        context.record("counted", "", actual as f64);
        context.record("lost updates", "", lost as f64);
        context.record("lost", "%", 100.0 * lost as f64 / expected as f64);
        Ok(lost)
    }
}
