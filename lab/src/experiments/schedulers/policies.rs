//! One list of independent tasks, run under each scheduling policy the schedulers lab compares:
//! `seq`, `static` (equal blocks up front), `fifo` (one shared queue), `steal` (our work-stealing
//! pool) and `rayon`. Shared by `granularity` and `imbalance`.
//!
//! Task i busy-works `durations[i]` ns and yields i + 1; a run's digest is the sum, so a task lost
//! or run twice fails the check. Every policy hands out single tasks (rayon with
//! `with_max_len(1)`, the steal pool by splitting the index range down to one task), so the
//! policies differ in scheduling only.

use rayon::prelude::*;

use crate::experiment::{Digest, RunContext, RunError, VariantSpec};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{PlatformError, RayonPool};
use conlab_core::sched::fifo::{FifoPool, FutureError};
use conlab_core::sched::partition;
use conlab_core::sched::steal::{PoolStats, StealPool};
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::trace::SpanKind;

/// The variants, in catalogue order; `seq` is the baseline.
pub(crate) fn variants() -> Vec<VariantSpec> {
    vec![
        VariantSpec::fixed("seq", "one thread runs every task in order"),
        VariantSpec::sweep("static", "equal blocks of tasks, one per thread, fixed up front"),
        VariantSpec::sweep("fifo", "FifoPool: each task submitted to one shared queue (ThreadPoolExecutor)"),
        VariantSpec::sweep("steal", "StealPool: the task range split with join, idle workers steal"),
        VariantSpec::sweep("rayon", "rayon par_iter with_max_len(1)"),
    ]
}

/// A policy's set-up: rayon's pool is built outside the timed run.
pub(crate) struct Runner {
    policy: String,
    threads: usize,
    rayon: Option<RayonPool>,
}

impl Runner {
    pub(crate) fn new(policy: &str, threads: usize) -> Result<Self, PlatformError> {
        let threads = if policy == "seq" { 1 } else { threads };
        let rayon = if policy == "rayon" { Some(RayonPool::new(threads)?) } else { None };
        if policy == "fifo" {
            FifoPool::check(threads)?;
        }
        Ok(Self { policy: policy.to_string(), threads, rayon })
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs every task once under this policy; the digest is Σ (i + 1).
    pub(crate) fn run(&self, durations: &[f64], spinner: Spinner, context: &RunContext) -> Result<Digest, RunError> {
        let task = |i: usize| -> u64 {
            if context.check_cancel().is_ok() {
                spinner.spin(durations[i]);
            }
            i as u64 + 1
        };
        let tasks = durations.len();
        let digest = match self.policy.as_str() {
            "seq" => {
                context.trace().lane(0).span(SpanKind::Run, || format!("{tasks} tasks"), || (0..tasks).map(task).sum())
            }
            "static" => {
                let sum = AtomicU64::new(0);
                partition::run_blocks(self.threads, tasks, context.trace(), |range| {
                    sum.fetch_add(range.map(task).sum(), Ordering::Relaxed);
                })?;
                sum.into_inner()
            }
            "fifo" => FifoPool::run(self.threads, context.trace(), |pool| {
                let futures: Vec<_> =
                    (0..tasks).map(|i| pool.submit(move || task(i)).expect("the pool is open")).collect();
                futures.iter().map(|future| future.result(None)).sum::<Result<u64, FutureError>>()
            })?
            .map_err(|error| RunError::Platform(PlatformError::MemberPanicked(error.to_string())))?,
            "steal" => {
                let (sum, stats) = StealPool::run(self.threads, context.trace(), |pool| split(pool, 0, tasks, &task))?;
                record_steals(context, &stats);
                sum
            }
            _ => {
                let pool = self.rayon.as_ref().expect("rayon cells build a pool");
                pool.install(|| {
                    (0..tasks)
                        .into_par_iter()
                        .with_max_len(1)
                        .map(|i| {
                            let thread = rayon::current_thread_index().unwrap_or(0);
                            context.trace().lane(thread).span(SpanKind::Run, || format!("task {i}"), || task(i))
                        })
                        .sum()
                })
            }
        };
        context.check_cancel()?;
        Ok(digest)
    }
}

/// A steal pool's counters as metrics: how much stealing and parking a run took.
pub(crate) fn record_steals(context: &RunContext, stats: &PoolStats) {
    let total = stats.total();
    context.record("steals", "per run", total.steals as f64);
    context.record("failed steals", "per run", total.failed_steals as f64);
    context.record("parks", "per run", total.parks as f64);
}

/// Fork-join over `start..end`, down to single tasks.
fn split(pool: &StealPool<'_>, start: usize, end: usize, task: &(impl Fn(usize) -> u64 + Sync)) -> u64 {
    match end - start {
        0 => 0,
        1 => task(start),
        len => {
            let mid = start + len / 2;
            let (left, right) = pool.join(|| split(pool, start, mid, task), || split(pool, mid, end, task));
            left + right
        }
    }
}

/// The digest of a correct run over `tasks` tasks.
pub(crate) fn expected(tasks: usize) -> Digest {
    let n = tasks as u64;
    n * (n + 1) / 2
}
