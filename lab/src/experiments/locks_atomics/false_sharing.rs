//! `false-sharing`: per-thread counters in one cache line vs one line each.

use crossbeam_utils::CachePadded;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, ScalingLaw,
    VariantSpec, Workload,
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
            teaches: "Each thread increments only its own counter (`fetch_add`) — no data is shared, no lock is needed. But caches \
                      move memory in 64-byte lines, and eight 8-byte counters side by side share one line: every \
                      increment by one thread invalidates the line in every other core's cache, and the threads queue \
                      for it as if they shared a lock. Padding each counter to its own line (crossbeam's CachePadded: \
                      128 bytes on x86-64, where the prefetcher pulls lines in pairs) removes the contention and \
                      restores linear scaling.",
            params: vec![ParamSpec::int(
                "increments",
                5_000_000,
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
            work_unit: Some("increments"),
            chart_metric: Some("ns per increment"),
            quick: &["increments=1000000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Counters { increments: params.int("increments") as u64 }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "at 1 thread nothing is shared: packed and padded run within 1.3× of each other (fastest runs)",
                |facts| {
                    let (packed, padded) = (facts.fastest("packed", 1)?, facts.fastest("padded", 1)?);
                    let ratio = packed.max(padded) / packed.min(padded);
                    verdict(
                        ratio <= 1.3,
                        format!("packed {:.2} ms, padded {:.2} ms", packed * 1e3, padded * 1e3),
                        "the counters share a line with other data",
                    )
                },
            ),
            Claim::new(
                "at 2 threads the shared line costs: packed takes ≥ 3× as long as padded (median runs: packed's fastest is \
                 the run whose threads overlapped least)",
                |facts| {
                    facts.cores(2)?;
                    facts.lasting("padded", 2, 1.5)?;
                    let ratio = facts.median("packed", 2)? / facts.median("padded", 2)?;
                    verdict(
                        ratio >= 3.0,
                        format!("packed takes {ratio:.1}× padded's time"),
                        "another program held a core, so the threads took turns",
                    )
                },
            ),
        ]
    }
}

struct Counters {
    increments: u64,
}

impl Workload for Counters {
    /// Each cell's own: every thread makes `increments`.
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The work grows with the threads, so speedups are ratios of increments per second.
    fn scaling_law(&self) -> ScalingLaw {
        ScalingLaw::Gustafson
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

/// One thread's counter: only its owner writes it, with `fetch_add` — uncontended, a locked add
/// costs the same wherever the counter lives, so any slowdown is the cache line moving between
/// cores. (A plain load and store would show the same on some CPUs and hide it on others: a core
/// that renames a store into the next load of the same address keeps the counter in its store
/// buffer and commits many increments per visit of the line — 1.8× where a locked add shows 6×
/// on one Xeon.) Never inlined: both variants run this one machine code, so that at 1 thread they
/// differ in nothing but where the counter lives.
#[inline(never)]
fn count(counter: &AtomicU64, increments: u64, context: &RunContext) {
    context.repeat(increments, |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
}

impl Cell for CountersCell {
    fn threads(&self) -> usize {
        self.threads
    }

    fn work_units(&self) -> Option<f64> {
        Some((self.increments * self.threads as u64) as f64)
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let started = conlab_core::platform::Instant::now();
        let total = if self.padded {
            let counters: Vec<CachePadded<AtomicU64>> =
                (0..self.threads).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
            run_team(self.threads, |member| count(&counters[member.index], self.increments, context))?;
            counters.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>()
        } else {
            // Lines of eight counters side by side, each line to itself: the packed counters share
            // lines with one another and with nothing else on the heap.
            let lines: Vec<CachePadded<[AtomicU64; 8]>> =
                (0..self.threads.div_ceil(8)).map(|_| CachePadded::new(Default::default())).collect();
            let counter = |index: usize| &lines[index / 8][index % 8];
            run_team(self.threads, |member| count(counter(member.index), self.increments, context))?;
            (0..self.threads).map(|index| counter(index).load(Ordering::Relaxed)).sum::<u64>()
        };
        context.check_cancel()?;
        context.record("ns per increment", "ns", started.elapsed().as_nanos() as f64 / self.increments as f64);
        Ok(self.increments * self.threads as u64 - total)
    }
}
