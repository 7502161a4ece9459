//! `false-sharing`: per-thread counters in one cache line vs one line each.

use crossbeam_utils::CachePadded;

use crate::experiment::{
    Cell, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec, Workload,
};
use conlab_core::platform::run_team;
use conlab_core::sync::atomic::{AtomicU64, Ordering};

pub struct FalseSharing;

impl Experiment for FalseSharing {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "false-sharing",
            title: "False sharing: private counters that are not private",
            topic: super::NAME,
            concept: "cache lines; why per-thread data still contends",
            teaches: "Each thread increments only its own counter — no data is shared, no lock is needed. But caches \
                      move memory in 64-byte lines, and eight 8-byte counters side by side share one line: every \
                      increment by one thread invalidates the line in every other core's cache, and the threads queue \
                      for it as if they shared a lock. Padding each counter to its own line (crossbeam's CachePadded: \
                      128 bytes on x86-64, where the prefetcher pulls lines in pairs) removes the contention and \
                      restores linear scaling.",
            params: vec![ParamSpec::int(
                "increments",
                20_000_000,
                1_000,
                500_000_000,
                "per thread",
                "increments of each thread's counter",
            )],
            variants: vec![
                VariantSpec::sweep("packed", "counters side by side: up to 8 share one cache line"),
                VariantSpec::sweep("padded", "each counter in its own cache line (CachePadded)"),
            ],
            baseline: "padded",
            chart_metric: Some("ns per increment"),
            quick: &["increments=20000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Counters { increments: params.int("increments") as u64 }))
    }
}

struct Counters {
    increments: u64,
}

impl Workload for Counters {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every cell's digest is the shortfall of the counters' total (0 when none was lost).
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(CountersCell { increments: self.increments, padded: variant == "padded", threads }))
    }
}

struct CountersCell {
    increments: u64,
    padded: bool,
    threads: usize,
}

/// One thread's counter: only its owner writes it, with a plain load and store (no locked
/// instruction), so any slowdown is the cache line moving between cores.
fn count(counter: &AtomicU64, increments: u64, context: &RunContext) {
    context.repeat(increments, |_| counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed));
}

impl Cell for CountersCell {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let started = conlab_core::platform::Instant::now();
        let total = if self.padded {
            let counters: Vec<CachePadded<AtomicU64>> =
                (0..self.threads).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
            run_team(self.threads, |member| count(&counters[member.index], self.increments, context))?;
            counters.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>()
        } else {
            let counters: Vec<AtomicU64> = (0..self.threads).map(|_| AtomicU64::new(0)).collect();
            run_team(self.threads, |member| count(&counters[member.index], self.increments, context))?;
            counters.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>()
        };
        context.check_cancel()?;
        context.record("ns per increment", "ns", started.elapsed().as_nanos() as f64 / self.increments as f64);
        Ok(self.increments * self.threads as u64 - total)
    }
}
